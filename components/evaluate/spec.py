"""evaluate: test-split metrics, calibration, slices, robustness, explanations, and the
Blessing gate (thresholds + no regression against the served model) that export and push require."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.pipeline.artifacts import Blessing, Evaluation, Examples, Model
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.stage import ExternalInput, StageSpec, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


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
    seed: int
    model_name: str
    # Where push publishes: the served model found there is the baseline, an outside input by design
    # (see _served_baseline); a path under run.root by default, which may move.
    serving_destination: str = dataclasses.field(default="", metadata=OUTSIDE_KEY)


def _params(config: Config) -> Params:
    return Params(
        evaluate=config.evaluate,
        seed=config.seed,
        serving_destination=str(config.push.serving_root(config.run.root)),
        model_name=config.export.model_name,
    )


def _served_baseline(params: Params) -> ExternalInput:
    """The served model, read from outside the artifact store. It stays out of the fingerprint:
    otherwise pushing a model would make the next run evaluate (and push) the same model again.
    A new model is always compared with what is served when it is evaluated; ``--from
    evaluate`` re-scores a cached one against a newer push."""
    from visionpipe.components.evaluate.baseline import served_model

    enabled = params.evaluate.baseline.enabled
    return ExternalInput("", served_model(Path(params.serving_destination), params.model_name) if enabled else None)


SPEC = StageSpec(
    name="evaluate",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.evaluate.executor:run",
    external_input=_served_baseline,
    key_metric="accuracy",
)
