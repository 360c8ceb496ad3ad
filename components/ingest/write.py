"""The ingest workers' second job: place every checked image by the split plan and write it.

Each bundle of tasks appends its records to one temporary shard per split; each task counts
what it wrote and keeps its statistics and the digests it placed in a file beside its spill
(per-image arrays never pass through the runner's buffers); ``finish`` (one call, after every
bundle) names the shards ``<split>/data-NNNNN-of-NNNNN.tfrecord``, merges the statistics and
the split index, and writes the reports.
One step writes every split: a Beam file sink per split would add half a dozen stages each,
and pass every record through a coder.

A bundle that fails and is retried leaves its temporary shards behind unreferenced;
``finish`` deletes them, so only records of committed bundles are ever named.
"""

from __future__ import annotations

import json
import pickle
import uuid
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

# TFRecord framing (length, masked CRC32C) as Beam's own TFRecord sink writes it; the public
# sink would write each split through its own multi-stage transform.
from apache_beam.io.tfrecordio import _TFRecordUtil

from visionpipe.components.ingest.check import Curated, TaskResult, read_spill
from visionpipe.components.ingest.keys import INDEX_FILE, Index, split_code
from visionpipe.components.ingest.partitions import DigestPartitions, rows_dtype
from visionpipe.components.ingest.split import SPLITS, Plan
from visionpipe.data import label_sets, record_format
from visionpipe.data.image_stats import ImageStatsFn, by_label, empty_split
from visionpipe.pipeline.artifacts import UNUSABLE, Examples

SHARD_PATTERN = "data-{index:05d}-of-{count:05d}.tfrecord"  # what data/records.py reads
_TEMP_PREFIX = ".tmp-"


class Written(NamedTuple):
    """What one task's images became."""

    shards: dict[str, str]  # split -> the temporary shard file its records went to
    outcome: str  # a file of the task's statistics and the digests it placed: ``Outcome``
    quarantined: list[tuple[str, str, str]]  # (item, reason, the anomaly kind that reports it)
    curated: list[Curated]  # items data.exclude left out or data.relabel relabelled
    written: dict[str, int]  # split -> examples written
    records: int  # TFRecord records the task held


class Outcome(NamedTuple):
    """What a task's images added to the split statistics and to the split index."""

    stats: dict[str, dict]  # split -> ImageStatsFn accumulator of the records written
    placed: tuple[np.ndarray, np.ndarray]  # (digests, split codes) of the images written

    def save(self, path: str) -> None:
        with FileSystems.create(path) as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: str) -> Outcome:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return pickle.load(f)


beam.coders.registry.register_coder(Written, beam.coders.PickleCoder)


class WriteSplits(beam.DoFn):
    """TaskResults in, one Written per task out. The tasks of a bundle append to the same shard
    per split, closed when the bundle finishes. Each Written comes out of ``process``: outputs of
    ``finish_bundle`` are lost on Beam's DaskRunner (2.77 collects a partition's outputs before it
    calls ``finish_bundle``)."""

    def __init__(self, out: str):
        self._out = out
        self._stats = ImageStatsFn()

    def start_bundle(self):
        self._shards: dict[str, str] = {}
        self._files: dict = {}

    def process(self, task: TaskResult, plan: Plan):
        labels: dict[str, bytes] = {}  # label (or label set) -> its serialized ids, made once each
        quarantined = [(item, reason, UNUSABLE) for item, reason in task.quarantined]
        accumulators: dict[str, dict] = {}
        written = dict.fromkeys(SPLITS, 0)
        keys, checked, unlabelled = read_spill(task.spill)
        placements = plan.place_all([candidate for candidate, _ in checked], keys.digests)
        for (candidate, meta), example, (split, reason, kind) in zip(checked, unlabelled, placements, strict=True):
            if reason:
                quarantined.append((candidate.source, reason, kind))
                continue
            if candidate.label not in labels:
                labels[candidate.label] = record_format.label_bytes(plan.label_ids(candidate.label))
            _TFRecordUtil.write_record(self._file(split), example + labels[candidate.label])
            written[split] += 1
            if split not in accumulators:
                accumulators[split] = self._stats.create_accumulator()
            self._stats.add_input(accumulators[split], meta)
        shards = {split: self._shards[split] for split in accumulators}
        codes = np.array([split_code(p.split) for p in placements], np.uint8)  # 0: quarantined
        outcome = f"{task.spill}.outcome"
        Outcome(accumulators, (keys.digests[codes > 0], codes[codes > 0])).save(outcome)
        yield Written(shards, outcome, quarantined, list(task.curated), written, task.records)

    def _file(self, split: str):
        if split not in self._files:
            self._shards[split] = FileSystems.join(self._out, split, f"{_TEMP_PREFIX}{uuid.uuid4().hex}.tfrecord")
            self._files[split] = FileSystems.create(self._shards[split])
        return self._files[split]

    def finish_bundle(self):
        for f in self._files.values():
            f.close()


def finish(written: list[Written], out: str, plan: Plan, rejected: list[tuple[str, str, str]]) -> dict[str, dict]:
    """Names the shards, writes the reports, and returns each split's statistics."""
    for split in SPLITS:
        shards = sorted({b.shards[split] for b in written if split in b.shards})  # a bundle's tasks share one
        targets = [
            FileSystems.join(out, split, SHARD_PATTERN.format(index=i, count=len(shards))) for i in range(len(shards))
        ]
        if shards:
            FileSystems.rename(shards, targets)
        stale = FileSystems.match([FileSystems.join(out, split, f"{_TEMP_PREFIX}*")])[0].metadata_list
        if stale:  # from bundles that failed and were retried
            FileSystems.delete([m.path for m in stale])
    split_stats = _merged_outcomes(written, out, plan)
    quarantined = sorted(rejected + [q for b in written for q in b.quarantined])
    files = {
        Examples.PLAN: json.dumps(plan.report(), indent=2),
        Examples.SPLIT_STATS: json.dumps(split_stats, indent=2),
        # What the pipeline wrote and read, for the driver's nothing-lost check: counted here rather
        # than in Beam metrics, which not every runner reports (DaskRunner does not).
        Examples.COUNTS: json.dumps(
            {
                "written": {split: sum(b.written[split] for b in written) for split in SPLITS},
                "records_found": sum(b.records for b in written),
            }
        ),
        Examples.QUARANTINE: "".join(
            json.dumps({"path": path, "reason": reason, "anomaly": kind}) + "\n" for path, reason, kind in quarantined
        ),
        Examples.CURATION: "".join(
            json.dumps(item._asdict()) + "\n" for item in sorted(c for b in written for c in b.curated)
        ),
    }
    for name, text in files.items():
        with FileSystems.create(FileSystems.join(out, name)) as f:
            f.write(text.encode())
    return split_stats


def _merged_outcomes(written: list[Written], out: str, plan: Plan) -> dict[str, dict]:
    """Writes the split index (the previous one with every placed image) and returns each
    split's statistics, read from the tasks' outcome files one at a time."""
    stats = ImageStatsFn()
    merged: dict[str, dict] = {}
    total = sum(sum(task.written.values()) for task in written)  # every image written is placed
    with DigestPartitions(rows_dtype(split="u1")) as placed:
        for task in written:
            outcome = Outcome.load(task.outcome)
            rows = np.empty(len(outcome.placed[0]), placed.dtype)
            rows["digest"], rows["split"] = outcome.placed
            placed.add(rows)
            for split, accumulator in outcome.stats.items():
                earlier = [merged[split]] if split in merged else []
                merged[split] = stats.merge_accumulators([*earlier, accumulator])
        if placed.rows != total:
            raise RuntimeError(f"ingest placed {placed.rows} images but wrote {total}")
        with FileSystems.create(FileSystems.join(out, INDEX_FILE)) as f:
            Index.save_merged(plan.previous, placed, f)
    split_stats = {split: stats.extract_output(merged[split]) if split in merged else empty_split() for split in SPLITS}
    if plan.task == label_sets.MULTI_LABEL:
        return {split: by_label(summary) for split, summary in split_stats.items()}
    return split_stats
