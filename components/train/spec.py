"""train: a registry model trained on the train split under a tf.distribute strategy."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from visionpipe.components.common.config import TrackingConfig
from visionpipe.components.train.config import InputConfig, TrainConfig
from visionpipe.models.config import ModelConfig, PreprocessingConfig
from visionpipe.pipeline.artifacts import Anomalies, Examples, HyperParameters, Model, Statistics
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.stage import StageSpec, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples = upstream("ingest", "examples")
    statistics: Statistics = upstream("validate", "statistics")
    anomalies: Anomalies = upstream("validate", "anomalies")
    # The tune stage's best hyperparameters, applied over the config (when tune is in the graph).
    hyperparameters: HyperParameters | None = upstream("tune", "best_hyperparameters", optional=True)


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
    tracking: TrackingConfig = dataclasses.field(metadata=OUTSIDE_KEY)  # where metrics also go: no rerun
    recipe: str = "manual"  # auto: auto.resolve fills in what the user did not set
    explicit: tuple[str, ...] = ()  # the keys the user set (with recipe auto only, so manual runs stay cached)


def params_of(config: Config) -> Params:
    auto = config.recipe == "auto"
    return Params(
        train=config.train,
        input=config.input,
        model=config.model,
        preprocessing=config.preprocessing,
        seed=config.seed,
        tracking=config.tracking,
        recipe=config.recipe,
        explicit=config.explicit if auto else (),
    )


SPEC = StageSpec(
    name="train",
    inputs=Inputs,
    outputs=Outputs,
    params=params_of,
    executor="visionpipe.components.train.executor:run",
    gate=lambda inputs: inputs.anomalies.blocking_reason(),
    key_metric="val_accuracy",
    distributed=True,
    resolve_params="visionpipe.components.train.auto:resolve",
)
