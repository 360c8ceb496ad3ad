"""The graph's wiring is checked when the graph is built: the real graph passes, and each kind of
wiring mistake fails at once, naming the stage and the input."""

import dataclasses

import pytest

from visionpipe.graph import ALL_STAGES
from visionpipe.pipeline.artifacts import Examples, Model
from visionpipe.pipeline.stage import StageSpec, check_wiring, upstream


@dataclasses.dataclass(frozen=True)
class Made:
    examples: Examples


def spec(name: str, inputs: type, outputs: type = Made, executor: str = "json:dumps") -> StageSpec:
    return StageSpec(name=name, inputs=inputs, outputs=outputs, params=lambda config: None, executor=executor)


@dataclasses.dataclass(frozen=True)
class Nothing:
    pass


def wired(stage: str, output: str, kind: type = Examples) -> type:
    @dataclasses.dataclass(frozen=True)
    class Inputs:
        data: kind = upstream(stage, output)

    return Inputs


def test_the_real_graph_is_wired_right():
    check_wiring(ALL_STAGES)  # also run when visionpipe.graph is imported


@pytest.mark.parametrize(
    ("second", "says"),
    [
        (
            spec("use", wired("ingets", "examples")),
            "stage 'use', input 'data': upstream('ingets', 'examples'): no stage",
        ),
        (spec("use", wired("make", "exampels")), "make's outputs are examples"),
        (spec("use", wired("make", "examples", Model)), "that output is of type Examples, not Model"),
        (
            spec("use", Nothing, executor="visionpipe.components.nowhere:run"),
            "no module 'visionpipe.components.nowhere'",
        ),
    ],
)
def test_a_wiring_mistake_fails_when_the_graph_is_built(second, says):
    with pytest.raises(ValueError) as raised:
        check_wiring([spec("make", Nothing), second])
    assert says in str(raised.value)
