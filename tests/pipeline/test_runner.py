"""The runner with small fake stages: explicit wiring, optional stages and inputs, caching,
and a failing stage that registers nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from visionpipe.config import Config, load_config
from visionpipe.pipeline.artifacts import Examples, HyperParameters, Model
from visionpipe.pipeline.checks import StageStatus
from visionpipe.pipeline.runner import run_graph
from visionpipe.pipeline.stage import StageSpec, upstream


@dataclasses.dataclass(frozen=True)
class NoInputs:
    pass


@dataclasses.dataclass(frozen=True)
class MakesExamples:
    examples: Examples


@dataclasses.dataclass(frozen=True)
class FromSecond:
    # Two stages produce Examples: the wiring, not the type, says which one this reads.
    examples: Examples = upstream("second", "examples")
    hyperparameters: HyperParameters | None = upstream("tuner", "best", optional=True)


@dataclasses.dataclass(frozen=True)
class MakesModel:
    model: Model


@dataclasses.dataclass(frozen=True)
class MakesHyperParameters:
    best: HyperParameters


def write(inputs, outputs, params, ctx) -> dict:
    """Writes the stage's name and what it read into each output."""
    read = {
        f.name: getattr(inputs, f.name).uri if getattr(inputs, f.name) else None for f in dataclasses.fields(inputs)
    }
    for f in dataclasses.fields(outputs):
        getattr(outputs, f.name).path.joinpath("made.json").write_text(json.dumps({"by": ctx.stage, "read": read}))
    if params == "fail":
        raise ValueError("this stage fails")
    return {}


def spec(name: str, inputs: type, outputs: type, param: str = "") -> StageSpec:
    return StageSpec(name, inputs, outputs, lambda config, p=param: p, f"{__name__}:write")


FIRST = spec("first", NoInputs, MakesExamples)
SECOND = spec("second", NoInputs, MakesExamples)
TUNER = spec("tuner", NoInputs, MakesHyperParameters)
CONSUMER = spec("consumer", FromSecond, MakesModel)


@pytest.fixture
def config(tmp_path) -> Config:
    return load_config(None, [f"run.root={tmp_path / 'runs'}"])


def made(result, stage: str) -> dict:
    outputs = result.outputs(stage)
    return json.loads(next(iter(outputs.values())).path.joinpath("made.json").read_text())


def test_an_input_reads_the_stage_and_output_it_names(config):
    result = run_graph(config, [FIRST, SECOND, CONSUMER])
    assert result.ok
    read = made(result, "consumer")["read"]
    assert read["examples"] == result.outputs("second")["examples"].uri
    assert read["hyperparameters"] is None  # the optional stage is not in the graph


def test_an_optional_stage_feeds_its_consumer_and_changes_its_fingerprint_only_when_present(config):
    without = run_graph(config, [SECOND, CONSUMER])
    again = run_graph(config, [SECOND, CONSUMER])
    assert [s.status for s in again.stages] == ["cached", "cached"]
    with_tuner = run_graph(config, [SECOND, TUNER, CONSUMER])
    assert [s.status for s in with_tuner.stages] == ["cached", "succeeded", "succeeded"]
    assert made(with_tuner, "consumer")["read"]["hyperparameters"] == with_tuner.outputs("tuner")["best"].uri
    back = run_graph(config, [SECOND, CONSUMER])  # the tuner out of the graph: as before
    assert [s.status for s in back.stages] == ["cached", "cached"]
    assert back.outputs("consumer")["model"].uri == without.outputs("consumer")["model"].uri


def test_a_missing_upstream_output_is_a_clear_error(config):
    result = run_graph(config, [FIRST, CONSUMER])
    assert result.stages[1].status == "failed"
    assert "needs the examples (Examples) of stage 'second'" in result.stages[1].message


def test_a_failing_stage_registers_nothing_and_stops_the_run(config, tmp_path):
    failing = spec("second", NoInputs, MakesExamples, param="fail")
    result = run_graph(config, [FIRST, failing, CONSUMER])
    assert [s.status for s in result.stages] == ["succeeded", "failed", "not run"]
    assert all(type(s.status) is StageStatus for s in result.stages) and result.failure() is result.stages[1]
    assert "ValueError: this stage fails" in result.stages[1].message
    assert not list((tmp_path / "runs" / "artifacts" / "second").iterdir())
    later = run_graph(config, [FIRST, SECOND, CONSUMER], only="consumer")
    assert later.stages[0].status == "failed"  # nothing from the failed execution can be used


# What a resolver may read besides the inputs (recipe auto: whether Keras has weights cached).
OUTSIDE = {"weights": "cached"}


def resolve(params, upstream) -> tuple[str, list[str]]:
    resolved = f"{params} on {upstream['examples'].properties['images']} images, weights {OUTSIDE['weights']}"
    return resolved, [f"chose: {resolved}"]


def write_params(inputs, outputs, params, ctx) -> dict:
    outputs.model.path.joinpath("params.json").write_text(json.dumps(params))
    return {}


def make_examples(inputs, outputs, params, ctx) -> dict:
    outputs.examples.properties["images"] = 12
    return {}


@dataclasses.dataclass(frozen=True)
class FromFirst:
    examples: Examples = upstream("first", "examples")


def test_resolved_params_are_what_the_executor_gets_and_what_the_fingerprint_covers(config, monkeypatch, capsys):
    graph = [
        StageSpec("first", NoInputs, MakesExamples, lambda c: "", f"{__name__}:make_examples"),
        StageSpec(
            "resolving",
            FromFirst,
            MakesModel,
            lambda c: "auto",
            f"{__name__}:write_params",
            resolve_params=f"{__name__}:resolve",
        ),
    ]
    result = run_graph(config, graph)
    assert result.ok
    params = json.loads(result.outputs("resolving")["model"].path.joinpath("params.json").read_text())
    assert params == "auto on 12 images, weights cached"
    assert "chose: auto on 12 images, weights cached" in capsys.readouterr().out
    assert [s.status for s in run_graph(config, graph).stages] == ["cached", "cached"]
    monkeypatch.setitem(OUTSIDE, "weights", "unavailable")  # same inputs and config, another resolution
    again = run_graph(config, graph)
    assert [s.status for s in again.stages] == ["cached", "succeeded"]
    assert "weights unavailable" in again.outputs("resolving")["model"].path.joinpath("params.json").read_text()
