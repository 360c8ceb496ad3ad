"""validate: statistics, schema and anomalies for the ingested examples."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from pipeline.artifacts import Anomalies, Examples, Schema, Statistics
from pipeline.config import Config, ValidateConfig
from pipeline.stage import StageSpec


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples


@dataclasses.dataclass(frozen=True)
class Outputs:
    statistics: Statistics
    schema: Schema
    anomalies: Anomalies


@dataclasses.dataclass(frozen=True)
class Params:
    validate: ValidateConfig
    channels: int  # pixel mean/std are computed in the channel space the model sees


def _params(config: Config) -> Params:
    return Params(validate=config.validate, channels=config.preprocessing.channels)


def _schema_fingerprint(params: Params) -> str:
    path = Path(params.validate.schema_path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if params.validate.schema_path and path.is_file() else ""


def blocking_reason(anomalies: Anomalies) -> str | None:
    """Why the data may not be trained on, or None: used as the gate of the train stage."""
    blocking = anomalies.properties.get("blocking", [])
    if not blocking:
        return None
    return (f"data validation found blocking anomalies ({', '.join(blocking)}); "
            f"see {anomalies.path / 'report.md'}")


SPEC = StageSpec(name="validate", inputs=Inputs, outputs=Outputs, params=_params,
                 executor="components.validate.executor:run", external_fingerprint=_schema_fingerprint,
                 key_metric="anomalies")
