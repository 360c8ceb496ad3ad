"""The ingest workers' second job: place every checked image by the split plan and write it.

Each bundle of tasks appends its records to one temporary shard per split, counts them, and
gathers the statistics of what it wrote; ``finish`` (one call, after every bundle) names the
shards ``<split>/data-NNNNN-of-NNNNN.tfrecord``, merges the statistics and writes the reports.
One step writes every split: a Beam file sink per split would add half a dozen stages each,
and pass every record through a coder.

A bundle that fails and is retried leaves its temporary shards behind unreferenced;
``finish`` deletes them, so only records of committed bundles are ever named.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import uuid
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

# TFRecord framing (length, masked CRC32C) as Beam's own TFRecord sink writes it; the public
# sink would write each split through its own multi-stage transform.
from apache_beam.io.tfrecordio import _TFRecordUtil

from visionpipe.components.ingest.check import Curated, TaskResult
from visionpipe.components.ingest.split import SPLITS, Plan
from visionpipe.data import label_sets, record_format
from visionpipe.data.image_stats import ImageStatsFn, by_label, empty_split
from visionpipe.pipeline.artifacts import UNUSABLE, Examples

SHARD_PATTERN = "data-{index:05d}-of-{count:05d}.tfrecord"  # what data/records.py reads
_TEMP_PREFIX = ".tmp-"


class Bundle(NamedTuple):
    shards: dict[str, str]  # split -> temporary shard file
    stats: dict[str, dict]  # split -> ImageStatsFn accumulator
    quarantined: list[tuple[str, str, str]]  # (item, reason, the anomaly kind that reports it)
    curated: list[Curated]  # items data.exclude left out or data.relabel relabelled


beam.coders.registry.register_coder(Bundle, beam.coders.PickleCoder)


class WriteSplits(beam.DoFn):
    """TaskResults in, one Bundle per bundle out (emitted when the bundle finishes)."""

    def __init__(self, out: str):
        self._out = out
        self._counters = {split: beam.metrics.Metrics.counter("ingest", split) for split in SPLITS}
        self._stats = ImageStatsFn()

    def start_bundle(self):
        self._shards: dict[str, str] = {}
        self._files: dict = {}
        self._accumulators: dict[str, dict] = {}
        self._quarantined: list[tuple[str, str, str]] = []
        self._curated: list[Curated] = []

    def process(self, task: TaskResult, plan: Plan):
        labels: dict[str, bytes] = {}  # label (or label set) -> its serialized ids, made once each
        self._quarantined.extend((item, reason, UNUSABLE) for item, reason in task.quarantined)
        self._curated.extend(task.curated)
        with FileSystems.open(task.spill, compression_type="uncompressed") as f:
            unlabelled = pickle.load(f)
        for (candidate, meta), example in zip(task.checked, unlabelled, strict=True):
            split, reason, kind = plan.place(candidate)
            if reason:
                self._quarantined.append((candidate.source, reason, kind))
                continue
            if candidate.label not in labels:
                labels[candidate.label] = record_format.label_bytes(plan.label_ids(candidate.label))
            _TFRecordUtil.write_record(self._file(split), example + labels[candidate.label])
            self._counters[split].inc()
            if split not in self._accumulators:
                self._accumulators[split] = self._stats.create_accumulator()
            self._stats.add_input(self._accumulators[split], meta)

    def _file(self, split: str):
        if split not in self._files:
            self._shards[split] = FileSystems.join(self._out, split, f"{_TEMP_PREFIX}{uuid.uuid4().hex}.tfrecord")
            self._files[split] = FileSystems.create(self._shards[split])
        return self._files[split]

    def finish_bundle(self):
        for f in self._files.values():
            f.close()
        bundle = Bundle(dict(self._shards), self._accumulators, self._quarantined, self._curated)
        yield beam.transforms.window.GlobalWindows.windowed_value(bundle)


def finish(bundles: list[Bundle], out: str, plan: Plan, rejected: list[tuple[str, str, str]]) -> dict[str, dict]:
    """Names the shards, writes the reports, and returns each split's statistics."""
    for split in SPLITS:
        shards = sorted(b.shards[split] for b in bundles if split in b.shards)
        targets = [
            FileSystems.join(out, split, SHARD_PATTERN.format(index=i, count=len(shards))) for i in range(len(shards))
        ]
        if shards:
            FileSystems.rename(shards, targets)
        stale = FileSystems.match([FileSystems.join(out, split, f"{_TEMP_PREFIX}*")])[0].metadata_list
        if stale:  # from bundles that failed and were retried
            FileSystems.delete([m.path for m in stale])
    stats = ImageStatsFn()
    split_stats = {}
    for split in SPLITS:
        accumulators = [b.stats[split] for b in bundles if split in b.stats]
        split_stats[split] = (
            stats.extract_output(stats.merge_accumulators(accumulators)) if accumulators else empty_split()
        )
        if plan.task == label_sets.MULTI_LABEL:
            split_stats[split] = by_label(split_stats[split])
    quarantined = sorted(rejected + [q for b in bundles for q in b.quarantined])
    report = dataclasses.asdict(plan)
    index = report.pop("index")
    files = {
        Examples.PLAN: json.dumps(report, indent=2),
        "split_index.json": json.dumps(index),
        Examples.SPLIT_STATS: json.dumps(split_stats, indent=2),
        Examples.QUARANTINE: "".join(
            json.dumps({"path": path, "reason": reason, "anomaly": kind}) + "\n" for path, reason, kind in quarantined
        ),
        Examples.CURATION: "".join(
            json.dumps(item._asdict()) + "\n" for item in sorted(c for b in bundles for c in b.curated)
        ),
    }
    for name, text in files.items():
        with FileSystems.create(FileSystems.join(out, name)) as f:
            f.write(text.encode())
    return split_stats
