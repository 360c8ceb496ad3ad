"""The push executor as the runner calls it: its two outputs on success; on a version that
is not infra-blessed, a GateError saying why and the INFRA_NOT_BLESSED verdict kept in the
scratch folder (the runner registers nothing for a failed stage)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.serving.push_fixtures import export_tiny, make_examples, push_config
from visionpipe.components.push.executor import run
from visionpipe.components.push.spec import Inputs, Outputs, Params
from visionpipe.pipeline.artifacts import Blessing, Evaluation, ExportedModel, InfraBlessing, PushedModel
from visionpipe.pipeline.checks import Check, Outcome, verdict
from visionpipe.pipeline.errors import GateError
from visionpipe.pipeline.stage import StageContext


def stage_call(tmp_path, softmax: bool, **exported: dict):
    """``exported``: more properties of the ExportedModel (``failed_gates``, ``tflite_files``)."""
    export = tmp_path / "export"
    export_tiny(export / "serving" / "visionpipe" / "1", softmax=softmax)
    inputs = Inputs(
        exported_model=ExportedModel(str(export), {"model_name": "visionpipe", **exported}),
        blessing=Blessing(str(tmp_path / "blessing"), {"blessed": True}),
        evaluation=Evaluation(str(tmp_path / "evaluation"), {"accuracy": 0.75, "split": "test"}),
        examples=make_examples(tmp_path / "examples"),
    )
    outputs = Outputs(PushedModel(str(tmp_path / "out" / "pushed_model")), InfraBlessing(str(tmp_path / "out" / "ib")))
    for artifact in (outputs.pushed_model, outputs.infra_blessing):
        artifact.path.mkdir(parents=True)
    ctx = StageContext("push", tmp_path, tmp_path / "scratch", 0, [])
    return lambda: run(inputs, outputs, Params(str(tmp_path / "serving"), push_config()), ctx), outputs


def test_the_stage_writes_both_outputs(tmp_path):
    call, outputs = stage_call(tmp_path, softmax=True)
    assert call()["version"] == 1
    pushed = json.loads((outputs.pushed_model.path / PushedModel.FILE).read_text())
    assert pushed["version"] == outputs.pushed_model.version == 1 and pushed["warmup_requests"] == 4
    assert (outputs.infra_blessing.path / InfraBlessing.BLESSED).is_file() and outputs.infra_blessing.blessed
    record = json.loads((tmp_path / "serving" / "visionpipe" / "1" / "assets.extra" / "visionpipe_version.json")
                        .read_text())  # fmt: skip
    assert record["accuracy"] == 0.75 and record["split"] == "test" and record["infra"]["blessed"]


def test_a_refused_version_says_why_and_keeps_the_verdict(tmp_path):
    call, _ = stage_call(tmp_path, softmax=False)
    with pytest.raises(GateError, match=r"infra validation failed \(warmup replay: .*do not sum to 1") as refused:
        call()
    report = tmp_path / "scratch" / InfraBlessing.FILE
    assert str(report) in str(refused.value) and (tmp_path / "scratch" / InfraBlessing.NOT_BLESSED).is_file()
    assert json.loads(report.read_text())["status"] == InfraBlessing.NOT_BLESSED
    assert not [p for p in (tmp_path / "serving" / "visionpipe").iterdir() if p.name.isdigit()]


def test_push_reads_export_gates_and_infra_outcomes_as_checks(tmp_path):
    """A file whose export gate failed stays out, whether its artifact stored the gate as a
    Check record or, from before records, as "failed: ..." text; the infra outcome push
    records reads back as Checks that bless by the one rule."""
    tflite = tmp_path / "export" / "tflite"
    tflite.mkdir(parents=True)
    for name in ("labels.txt", "preprocessing.json", "model_float.tflite", "model_int8.tflite", "model_f16.tflite"):
        (tflite / name).write_text(name)
    dropped = Check("tflite_int8", Outcome.FAILED, "accuracy drop 0.0300 > 0.02")
    too_big = Check("tflite_float16", Outcome.FAILED, "size 9 KiB > 1 KiB")
    files = {"tflite_float": "tflite/model_float.tflite", "tflite_int8": "tflite/model_int8.tflite",
             "tflite_float16": "tflite/model_f16.tflite"}  # fmt: skip
    failed = {"tflite_int8": dropped.as_dict(), "tflite_float16": str(too_big)}  # a record, and text as before
    call, outputs = stage_call(tmp_path, softmax=True, failed_gates=failed, tflite_files=files)
    call()
    pushed = outputs.pushed_model.properties
    assert sorted(p.name for p in Path(pushed["tflite"]).glob("*.tflite")) == ["model_float.tflite"]
    assert {name: Check.from_dict(c) for name, c in pushed["not_pushed"].items()} == {
        "tflite_int8": dropped,
        "tflite_float16": too_big,
    }
    infra = outputs.infra_blessing
    assert infra.checks and all(isinstance(c, Check) for c in infra.checks)
    assert verdict(infra.checks)[0] is Outcome.PASSED and infra.blessed and infra.reason == ""
    assert {c.outcome for c in infra.checks} <= {Outcome.PASSED, Outcome.NOT_CHECKED}


@pytest.mark.parametrize("stored", ["record", "text"])
def test_a_saved_model_that_failed_its_export_gate_is_refused(tmp_path, stored):
    check = Check("saved_model", Outcome.FAILED, "accuracy drop 0.2000 > 0.02")
    failed = {"saved_model": check.as_dict() if stored == "record" else str(check)}
    call, _ = stage_call(tmp_path, softmax=True, failed_gates=failed)
    expected = "the SavedModel failed its export gate (failed: accuracy drop 0.2000 > 0.02); nothing is pushed"
    with pytest.raises(GateError, match=re.escape(expected)):
        call()
    assert not (tmp_path / "serving" / "visionpipe").exists()


def test_a_refused_versions_infra_record_reads_as_checks(tmp_path):
    call, _ = stage_call(tmp_path, softmax=False)
    with pytest.raises(GateError):
        call()
    record = json.loads((tmp_path / "scratch" / InfraBlessing.FILE).read_text())
    infra = InfraBlessing(str(tmp_path / "scratch"), record)
    outcome, deciding = verdict(infra.checks)
    assert outcome is Outcome.FAILED and not infra.blessed and [c.name for c in deciding] == ["warmup replay"]
    assert infra.reason == f"warmup replay: {deciding[0].detail}" and "do not sum to 1" in infra.reason
