"""train: a registry model trained on the train split under a tf.distribute strategy."""

from __future__ import annotations

import dataclasses

from visionpipe.components.validate.spec import blocking_reason
from visionpipe.pipeline.artifacts import Anomalies, Examples, Model, Statistics
from visionpipe.pipeline.config import Config, InputConfig, ModelConfig, PreprocessingConfig, TrainConfig
from visionpipe.pipeline.stage import StageSpec


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples
    statistics: Statistics
    anomalies: Anomalies


@dataclasses.dataclass(frozen=True)
class Outputs:
    model: Model


@dataclasses.dataclass(frozen=True)
class Params:
    train: TrainConfig
    input: InputConfig
    model: ModelConfig
    preprocessing: PreprocessingConfig
    seed: int


def _params(config: Config) -> Params:
    return Params(
        train=config.train, input=config.input, model=config.model, preprocessing=config.preprocessing, seed=config.seed
    )


SPEC = StageSpec(
    name="train",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.train.executor:run",
    gate=lambda inputs: blocking_reason(inputs.anomalies),
    key_metric="val_accuracy",
)
