"""ingest: images from a folder (or the built-in dataset) -> sharded TFRecords per split."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.artifacts import Examples
from pipeline.config import Config, DataConfig
from pipeline.fingerprint import folder_fingerprint
from pipeline.stage import StageSpec


@dataclasses.dataclass(frozen=True)
class Inputs:
    pass


@dataclasses.dataclass(frozen=True)
class Outputs:
    examples: Examples


@dataclasses.dataclass(frozen=True)
class Params:
    data: DataConfig
    num_shards: int


def _params(config: Config) -> Params:
    return Params(data=config.data, num_shards=config.beam.num_shards)


def _source_fingerprint(params: Params) -> str:
    if params.data.source == "builtin":
        return f"builtin:{params.data.builtin_name}"
    path = Path(params.data.path)
    # An empty path would otherwise be "." and fingerprint the whole working directory.
    return folder_fingerprint(path) if params.data.path and path.is_dir() else f"missing:{path}"


SPEC = StageSpec(name="ingest", inputs=Inputs, outputs=Outputs, params=_params,
                 executor="components.ingest.executor:run", external_fingerprint=_source_fingerprint,
                 key_metric="ingested")
