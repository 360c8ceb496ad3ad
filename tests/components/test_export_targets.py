"""The table of export targets (components/export/targets.py) is wired: every row's flags are
ExportConfig settings that turn it on, its converter exists, the executor has a path that makes
it, the config and the gates know its name, and push publishes it when it passes."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from visionpipe.components.export import executor as export_executor
from visionpipe.components.export.config import ArtifactGate, ExportConfig
from visionpipe.components.export.gates import check_gates, gate_of
from visionpipe.components.export.targets import (
    BY_NAME,
    ONNX,
    SAVED_MODEL,
    TARGETS,
    converter_of,
    made,
)
from visionpipe.components.push import executor as push_executor
from visionpipe.config import load_config
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.checks import Outcome
from visionpipe.pipeline.config import ConfigError
from visionpipe.pipeline.errors import GateError
from visionpipe.pipeline.stage import StageContext

OFF = ExportConfig(tflite_float=False, tflite_int8=False)  # every flag off: only the SavedModel is made


def _with(config, dotted: str, value):
    """``config`` with the (nested, frozen) setting ``dotted`` replaced."""
    head, _, rest = dotted.partition(".")
    inner = _with(getattr(config, head), rest, value) if rest else value
    return dataclasses.replace(config, **{head: inner})


def _field_type(cls, dotted: str):
    for part in dotted.split("."):
        hints = typing.get_type_hints(cls)
        assert part in hints, f"{part!r} of {dotted!r} is not a setting of {cls.__name__}"
        cls = hints[part]
    return cls


def _on(config, flags):
    """``config`` with ``flags`` on (a str setting, the distilled student, gets a name; a float, the
    share of filters channel pruning removes, a value)."""
    values = {str: "a_student", float: 0.5, bool: True}
    for flag in flags:
        config = _with(config, flag, values[_field_type(ExportConfig, flag)])
    return config


def _turned_on(target):
    return _on(OFF, target.flags)


def test_names_and_files_are_unique():
    assert len({t.name for t in TARGETS}) == len(TARGETS)
    assert len({(t.folder, t.file) for t in TARGETS}) == len(TARGETS)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_each_row_is_turned_on_by_its_own_flags_and_has_a_converter(target):
    for flag in target.flags:
        assert _field_type(ExportConfig, flag) in (bool, str, float), flag
    assert target.folder in (ExportedModel.SERVING, ExportedModel.TFLITE, "")
    assert callable(converter_of(target))
    assert target in made(_turned_on(target))
    if target.flags:
        assert target not in made(OFF)
    for name in target.replaces:
        assert BY_NAME[name] not in made(_turned_on(target))


def test_the_executor_has_one_path_that_makes_each_row():
    everything = _on(OFF, [flag for target in TARGETS for flag in target.flags])
    for preserve_sparsity in (True, False):
        config = _with(everything, "compression.preserve_sparsity", preserve_sparsity)
        paths = [
            [SAVED_MODEL],
            export_executor._tflite_conversions(config),
            made(config, "trained"),
            made(config, "distilled"),
            [ONNX] if ONNX in made(config) else [],
        ]
        picked = [t for path in paths for t in path]
        assert sorted(t.name for t in picked) == sorted(t.name for t in made(config))
    assert {t.name for t in made(everything)} | {"tflite_prune_int8", "tflite_qat_int8"} == set(BY_NAME)


def test_the_config_accepts_a_gate_for_every_target_and_refuses_others():
    for target in TARGETS:
        config = load_config(overrides=[f"export.gates.{target.name}.max_size_kib=1"])
        assert config.export.gates[target.name].max_size_kib == 1
    with pytest.raises(ConfigError, match="unknown export.gates key 'tflite_int4'"):
        load_config(overrides=["export.gates.tflite_int4.max_size_kib=1"])


def test_gates_check_every_gated_row_and_push_publishes_the_phone_files_that_passed(tmp_path):
    failing = BY_NAME["tflite_float16"]
    config = dataclasses.replace(OFF, gates={failing.name: ArtifactGate(max_size_kib=0.5)})
    results = {"keras": {"accuracy": 0.9}} | {t.name: {"accuracy": 0.9, "size_bytes": 1024} for t in TARGETS}
    check_gates(results, config)
    for target in TARGETS:
        assert ("gate" in results[target.name]) == target.gated
    assert gate_of(failing.name, results[failing.name]).outcome is Outcome.FAILED
    assert gate_of("tflite_int8", results["tflite_int8"]).outcome is Outcome.PASSED

    out = tmp_path / "export"
    tflite_dir = out / ExportedModel.TFLITE
    tflite_dir.mkdir(parents=True)
    for extra in ("labels.txt", "preprocessing.json"):
        (tflite_dir / extra).write_text(extra)
    files = {}
    for target in TARGETS:
        if target.folder == ExportedModel.TFLITE:
            (tflite_dir / target.file).write_bytes(target.name.encode())
            files[target.name] = tflite_dir / target.file
    exported = ExportedModel(str(out))
    ctx = StageContext("export", tmp_path, tmp_path / "scratch", 0, [])
    export_executor._record(exported, results, files, config, "test", ctx)
    assert exported.failed_gates == {failing.name: gate_of(failing.name, results[failing.name])}

    result = types.SimpleNamespace(version=1, pruned=[])
    published = push_executor._push_tflite(exported, exported.failed_gates, tmp_path / "phone", result)
    expected = {t.file for t in TARGETS if t.folder == ExportedModel.TFLITE and t is not failing}
    assert {p.name for p in published.iterdir()} == expected | {"labels.txt", "preprocessing.json"}


def test_push_refuses_when_the_saved_model_failed_its_gate(tmp_path):
    exported = ExportedModel(str(tmp_path), {"model_name": "m", "failed_gates": {SAVED_MODEL.name: "failed: size"}})
    ctx = StageContext("push", tmp_path, tmp_path / "scratch", 0, [])
    with pytest.raises(GateError, match=r"the SavedModel failed its export gate \(failed: size\)"):
        push_executor.run(types.SimpleNamespace(exported_model=exported), None, None, ctx)
