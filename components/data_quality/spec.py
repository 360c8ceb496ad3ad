"""data_quality: likely label errors, near-duplicates (leakage across splits) and outliers in
the ingested data, found with the trained model's embeddings after evaluate."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from visionpipe.components.data_quality.config import DataQualityConfig
from visionpipe.pipeline.artifacts import DataQuality, Examples, Model
from visionpipe.pipeline.stage import StageSpec, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples = upstream("ingest", "examples")
    model: Model = upstream("train", "model")


@dataclasses.dataclass(frozen=True)
class Outputs:
    data_quality: DataQuality


@dataclasses.dataclass(frozen=True)
class Params:
    data_quality: DataQualityConfig
    seed: int  # the folds of the cross-validation
    leakage_severity: str  # validate.severity.near_duplicate_leakage: "block" or "warn"


def _params(config: Config) -> Params:
    return Params(
        data_quality=config.data_quality,
        seed=config.seed,
        leakage_severity=config.validate.severity.near_duplicate_leakage,
    )


SPEC = StageSpec(
    name="data_quality",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.data_quality.executor:run",
)
