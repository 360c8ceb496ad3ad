"""tune: a KerasTuner search over config keys; its best hyperparameters feed the train stage."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from visionpipe.components.train.spec import Params as TrainParams
from visionpipe.components.train.spec import params_of as train_params
from visionpipe.components.tune.config import TuneConfig
from visionpipe.pipeline.artifacts import Anomalies, Examples, HyperParameters, Statistics
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.stage import StageSpec, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples = upstream("ingest", "examples")
    statistics: Statistics = upstream("validate", "statistics")
    anomalies: Anomalies = upstream("validate", "anomalies")


@dataclasses.dataclass(frozen=True)
class Outputs:
    best_hyperparameters: HyperParameters


@dataclasses.dataclass(frozen=True)
class Params:
    tune: TuneConfig
    base: TrainParams  # what each trial starts from before the sampled values are applied
    # The tuner's folder; searches live in <directory>/<search key>. Out of the key: tune.directory
    # (in ``tune``) is the setting; its default is under run.root, which may move.
    directory: str = dataclasses.field(default="", metadata=OUTSIDE_KEY)


def _params(config: Config) -> Params:
    directory = config.tune.directory or str(Path(config.run.root).resolve() / "tuning")
    return Params(tune=config.tune, base=train_params(config), directory=directory)


SPEC = StageSpec(
    name="tune",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.tune.executor:run",
    gate=lambda inputs: inputs.anomalies.blocking_reason(),
    key_metric="best_score",
    resolve_params="visionpipe.components.train.auto:resolve_tune",
)
