"""evaluate: test-split metrics and the Blessing gate that export and push require."""

from __future__ import annotations

import dataclasses

from visionpipe.pipeline.artifacts import Blessing, Evaluation, Examples, Model
from visionpipe.pipeline.config import EvaluateConfig
from visionpipe.pipeline.stage import StageSpec, upstream


@dataclasses.dataclass(frozen=True)
class Inputs:
    model: Model = upstream("train", "model")
    examples: Examples = upstream("ingest", "examples")


@dataclasses.dataclass(frozen=True)
class Outputs:
    evaluation: Evaluation
    blessing: Blessing


@dataclasses.dataclass(frozen=True)
class Params:
    evaluate: EvaluateConfig


def not_blessed_reason(blessing: Blessing) -> str | None:
    """Why a model may not be exported or pushed, or None: the gate of export and push."""
    if blessing.blessed:
        return None
    reasons = "; ".join(blessing.reasons) or "no blessing recorded"
    return f"the model is not blessed: {reasons}"


SPEC = StageSpec(
    name="evaluate",
    inputs=Inputs,
    outputs=Outputs,
    params=lambda config: Params(evaluate=config.evaluate),
    executor="visionpipe.components.evaluate.executor:run",
    key_metric="accuracy",
)
