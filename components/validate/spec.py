"""validate: statistics, schema and anomalies for the ingested examples."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from visionpipe.components.validate.config import ValidateConfig
from visionpipe.pipeline.artifacts import Anomalies, Examples, Schema, Statistics
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.stage import ExternalInput, StageSpec, previous, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    examples: Examples = upstream("ingest", "examples")
    # Statistics of the previous data version: the baseline that drift is measured against.
    previous: Statistics | None = previous(other_data=True)


@dataclasses.dataclass(frozen=True)
class Outputs:
    statistics: Statistics
    schema: Schema
    anomalies: Anomalies


@dataclasses.dataclass(frozen=True)
class Params:
    validate: ValidateConfig
    # Where `visionpipe schema --accept` keeps the reviewed schema: under run.root, which may move; its
    # content is the stage's outside input (_reviewed_schema), so the path stays out of the key.
    accepted_dir: str = dataclasses.field(default="", metadata=OUTSIDE_KEY)


def accepted_dir(root: str | Path) -> Path:
    return Path(root) / "accepted"


def _params(config: Config) -> Params:
    return Params(validate=config.validate, accepted_dir=str(accepted_dir(config.run.root).resolve()))


def reviewed_schema_path(params: Params) -> Path | None:
    """validate.schema_path if set, else the accepted schema if there is one."""
    if params.validate.schema_path:
        return Path(params.validate.schema_path)
    accepted = Path(params.accepted_dir) / "schema.pbtxt"
    return accepted if accepted.is_file() else None


def _reviewed_schema(params: Params) -> ExternalInput:
    h = hashlib.sha256()
    for path in (reviewed_schema_path(params), Path(params.accepted_dir) / "accepted.json"):
        if path is not None and path.is_file():
            h.update(path.read_bytes())
    return ExternalInput(h.hexdigest())


SPEC = StageSpec(
    name="validate",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.validate.executor:run",
    external_input=_reviewed_schema,
    key_metric="anomalies",
)
