"""ingest: images from a folder, manifest, TFRecords, TFDS or the built-in dataset -> TFRecords per split."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING

from visionpipe.components.ingest.config import DataConfig
from visionpipe.pipeline.artifacts import Examples
from visionpipe.pipeline.stage import ExternalInput, StageSpec, previous

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.components.ingest.curation import Curation
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    # The last ingest of this run root on other data: its split index keeps old images in place.
    previous: Examples | None = previous()


@dataclasses.dataclass(frozen=True)
class Outputs:
    examples: Examples


@dataclasses.dataclass(frozen=True)
class Params:
    data: DataConfig
    channels: int  # odd images are converted to this many channels; pixel sums are taken in it
    num_shards: int
    files_per_task: int
    # data.exclude and data.relabel as read now: editing those files reruns ingest.
    curation: Curation


def _params(config: Config) -> Params:
    from visionpipe.components.ingest import curation  # here: it loads Beam's file systems

    return Params(
        data=config.data,
        channels=config.preprocessing.channels,
        num_shards=config.beam.num_shards,
        files_per_task=config.beam.files_per_task,
        curation=curation.load(config.data),
    )


def _source(params: Params) -> ExternalInput:
    """The source's listing and a fingerprint of what it holds now (paths, sizes, modification
    times), without reading any image; the executor ingests this same listing."""
    data = params.data
    if data.source == "builtin":
        return ExternalInput(f"builtin:{data.builtin_name}")
    from visionpipe.components.ingest import sources

    listing = sources.list_source(data, datasets_dir=None)
    h = hashlib.sha256(f"{listing.description}|{listing.empty_classes}".encode())
    for i, line in enumerate(sources.stamp(listing)):  # the bytes of "\n".join(lines), line by line
        h.update(f"\n{line}".encode() if i else line.encode())
    return ExternalInput(h.hexdigest(), listing)


SPEC = StageSpec(
    name="ingest",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.ingest.executor:run",
    external_input=_source,
    key_metric="ingested",
)
