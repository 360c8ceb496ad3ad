"""The push executor as the runner calls it: its two outputs on success; on a version that
is not infra-blessed, a GateError saying why and the INFRA_NOT_BLESSED verdict kept in the
scratch folder (the runner registers nothing for a failed stage)."""

from __future__ import annotations

import json

import pytest

from tests.serving.push_fixtures import export_tiny, make_examples, push_config
from visionpipe.components.push.executor import run
from visionpipe.components.push.spec import Inputs, Outputs, Params
from visionpipe.pipeline.artifacts import Blessing, Evaluation, ExportedModel, InfraBlessing, PushedModel
from visionpipe.pipeline.errors import GateError
from visionpipe.pipeline.stage import StageContext


def stage_call(tmp_path, softmax: bool):
    export = tmp_path / "export"
    export_tiny(export / "serving" / "visionpipe" / "1", softmax=softmax)
    inputs = Inputs(
        exported_model=ExportedModel(str(export), {"model_name": "visionpipe"}),
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
