"""The export targets: one row per file the export stage can make, read by everything that
names one.

A row says what the file is called (its gate key ``export.gates.<name>``, its row in
``artifacts.json`` and the name push and the run report know it by), where it goes, which
``export.*`` settings turn it on, the function that makes it, its precision, and whether it
has a gate. The app's ``load_config`` checks ``export.gates`` keys against the names; the
executor makes, scores and measures the rows the config turns on; the gates check the gated
ones; push publishes the SavedModel and the ``tflite`` files that passed.
Adding a TFLite format is one row here, its converter function (``tflite.py``) and its
``export.*`` flag (``pipeline/config.py``); ``tests/components/test_export_targets.py``
checks that every row is wired.

No TensorFlow here: converters are named as ``"module:function"`` (as a stage names its
executor) and loaded by ``converter_of`` when a file is made.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from visionpipe.components.export.config import ExportConfig
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Target:
    name: str  # the gate key, the results row, the key push and the report use
    file: str  # its file in ``folder`` (the SavedModel: its folder under serving/<model_name>/)
    folder: str  # ExportedModel.SERVING, ExportedModel.TFLITE, or "" (the artifact's top)
    # The export.* settings (dotted below export) that must all be on for the file to be made;
    # () = always made.
    flags: tuple[str, ...]
    converter: str  # "module:function" that makes the file
    precision: str  # float32 | float16 | dynamic_int8 (int8 weights, float activations) | int8
    # What it is made from: served (the calibrated model), trained (tfmot bridge), distilled
    # (a model trained from the trained one: its channel-pruned copy, a student).
    source: str
    calibrated: bool = False  # the converter takes representative train images (full-integer int8)
    technique: str = ""  # the tfmot bridge's technique (prune, qat, pqat) for source trained
    replaces: tuple[str, ...] = ()  # targets this one is made instead of when it is on
    gated: bool = True  # checked against export.max_accuracy_drop / export.gates.<name>
    # What its pruning buys at run time, for the table (BENCHMARKS.md measures both kinds).
    pruning: str = ""

    def flags_on(self, export: ExportConfig) -> bool:
        return all(_setting(export, flag) for flag in self.flags)


_TFLITE, _BRIDGE = "visionpipe.components.export.tflite", "visionpipe.components.export.compression:compress"
_ZEROS = "zeros stored, computed anyway by XNNPACK: smaller gzipped, not faster"
_SERVING, _PHONE = ExportedModel.SERVING, ExportedModel.TFLITE

SAVED_MODEL = Target(
    ExportedModel.SAVED_MODEL,
    "",
    _SERVING,
    (),
    "visionpipe.components.export.saved_model:export_saved_model",
    "float32",
    "served",
)
TFLITE_INT8 = Target(
    "tflite_int8", "model_int8.tflite", _PHONE, ("tflite_int8",), f"{_TFLITE}:convert_int8", "int8", "served",
    calibrated=True,
)  # fmt: skip
# Learnt from the trained model by distillation (distill.py): its channel-pruned copy, a student.
CHANNELS = Target(
    "tflite_channels_int8", "model_channels_int8.tflite", _PHONE, ("compression.channels.fraction",),
    f"{_TFLITE}:convert_int8", "int8", "distilled", calibrated=True,
    pruning="filters removed: fewer multiply-accumulates, faster",
)  # fmt: skip
STUDENT = Target(
    "tflite_student_int8", "model_student_int8.tflite", _PHONE, ("compression.distill.student",),
    f"{_TFLITE}:convert_int8", "int8", "distilled", calibrated=True,
)  # fmt: skip
ONNX = Target(
    "onnx", "model.onnx", "", ("onnx",), "visionpipe.components.export.onnx_model:export_onnx", "float32", "served"
)

# In the order of the results table, and of the files made.
TARGETS: tuple[Target, ...] = (
    SAVED_MODEL,
    Target("tflite_float", "model_float.tflite", _PHONE, ("tflite_float",), f"{_TFLITE}:convert_float",
           "float32", "served"),
    Target("tflite_float16", "model_float16.tflite", _PHONE, ("tflite_float16",), f"{_TFLITE}:convert_float16",
           "float16", "served"),
    Target("tflite_dynamic_int8", "model_dynamic_int8.tflite", _PHONE, ("tflite_dynamic_int8",),
           f"{_TFLITE}:convert_dynamic_range", "dynamic_int8", "served"),
    TFLITE_INT8,
    Target("tflite_prune_int8", "model_pruned_int8.tflite", _PHONE, ("compression.prune.enabled",), _BRIDGE,
           "int8", "trained", technique="prune", pruning=_ZEROS),
    Target("tflite_qat_int8", "model_qat_int8.tflite", _PHONE, ("compression.qat",), _BRIDGE,
           "int8", "trained", technique="qat"),
    # With prune and qat on, QAT keeps the pruned zeros (tfmot's collaborative optimization):
    # one pruned + QAT file instead of two.
    Target("tflite_pqat_int8", "model_pruned_qat_int8.tflite", _PHONE,
           ("compression.prune.enabled", "compression.qat", "compression.preserve_sparsity"), _BRIDGE,
           "int8", "trained", technique="pqat", replaces=("tflite_prune_int8", "tflite_qat_int8"), pruning=_ZEROS),
    CHANNELS,
    STUDENT,
    ONNX,
)  # fmt: skip
BY_NAME: dict[str, Target] = {t.name: t for t in TARGETS}


def made(export: ExportConfig, source: str | None = None) -> list[Target]:
    """The targets this config makes (of ``source`` only, when given), in table order."""
    on = [t for t in TARGETS if t.flags_on(export)]
    replaced = {name for t in on for name in t.replaces}
    return [t for t in on if t.name not in replaced and (source is None or t.source == source)]


def check_config(export: ExportConfig) -> None:
    """Raises ConfigError naming an ``export.gates`` key that is no target's name (the app's
    ``load_config`` calls it: the framework's config cannot import a component)."""
    unknown = [name for name in export.gates if name not in BY_NAME]
    if unknown:
        raise ConfigError(f"unknown export.gates key {unknown[0]!r}; artifacts: {', '.join(BY_NAME)}")


def converter_of(target: Target) -> Callable[..., Any]:
    module, function = target.converter.split(":")
    return getattr(importlib.import_module(module), function)


def _setting(export: ExportConfig, dotted: str) -> Any:
    value: Any = export
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
