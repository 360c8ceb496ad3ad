"""ingest executor: a Beam pipeline that reads, checks, splits and writes every image.

Workers take files (or TFRecord records) in tasks of ``beam.files_per_task``: reading,
fully decoding, hashing and measuring a few hundred images per call keeps Beam's per-element
cost out of the per-image cost. The content hashes then meet in one split plan (see
``split.py``), and each image is written as a tf.train.Example to ``<split>/data-*.tfrecord``.
Unusable items go to ``quarantine.jsonl`` with the reason: found = ingested + quarantined,
always, and the run prints all three.

Outputs besides the records: ``classes.json``, ``split_index.json`` (content hash -> split,
read by the next ingest so old images keep their split), ``plan.json`` (duplicates,
leakage, label conflicts) and ``split_stats.json`` (per-split statistics measured while the
images were decoded anyway; validate turns them into protos, schema and anomalies).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import pickle
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import ReadAllFromTFRecord
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from visionpipe.components.common import record_format
from visionpipe.components.common.image_stats import (
    ImageMeta,
    ImageStatsFn,
    MergeImageStats,
    empty_split,
)
from visionpipe.components.ingest import images, sources
from visionpipe.components.ingest.spec import Inputs, Outputs, Params
from visionpipe.components.ingest.split import SPLITS, Candidate, Plan, make_plan
from visionpipe.pipeline.errors import DataError
from visionpipe.pipeline.stage import StageContext


class TaskResult(NamedTuple):
    """What a worker reports for one task. The serialized Examples (still without their label
    ids, which need every task's classes) wait in a spill file: only this small summary
    travels through the runner to the split plan."""

    spill: str
    checked: list[tuple[Candidate, ImageMeta]]
    quarantined: list[tuple[str, str]]  # (item, reason)


# One pickle per task result: Beam's default coder would encode every nested named tuple
# on its own, pickling its type each time, and that cost more than checking the image.
beam.coders.registry.register_coder(TaskResult, beam.coders.PickleCoder)


class _CheckTask(beam.DoFn):
    """Checks a task's items; subclasses say how an item becomes (candidate, image bytes)."""

    def __init__(self, max_pixels: int, channels: int, pixel_fraction: float, spill_dir: str):
        self._max_pixels, self._channels = max_pixels, channels
        self._pixel_fraction, self._spill_dir = pixel_fraction, spill_dir

    def items(self, task) -> Iterator[tuple[str, Callable[[], tuple[bytes, str, str]]]]:
        """(item name, read) pairs; read() -> (image bytes, label, given split) or raises."""
        raise NotImplementedError

    def process(self, task):
        checked, examples, quarantined = [], [], []
        for where, read in self.items(task):
            try:
                data, label, split = read()
                image = images.check_image(data, self._max_pixels, self._channels, self._pixel_fraction)
            except (images.BadImage, ValueError) as err:
                quarantined.append((where, str(err)))
            except OSError as err:  # unreadable file, broken symlink, permission denied
                quarantined.append((where, f"cannot read file: {err.strerror or err}"))
            else:
                candidate = Candidate(where, image.sha256, label, split)
                checked.append(
                    (
                        candidate,
                        ImageMeta(
                            label,
                            image.format,
                            image.mode,
                            image.height,
                            image.width,
                            image.channels,
                            image.converted,
                            image.pixels,
                        ),
                    )
                )
                examples.append(record_format.serialize_unlabelled(image.record(label, where)))
        spill = FileSystems.join(self._spill_dir, f"{uuid.uuid4().hex}.pickle")
        with FileSystems.create(spill) as f:
            pickle.dump(examples, f, protocol=pickle.HIGHEST_PROTOCOL)
        yield TaskResult(spill, checked, quarantined)


class CheckFiles(_CheckTask):
    """A task is a list of (path, label, split) entries."""

    def items(self, task):
        for path, label, split in task:
            yield path, functools.partial(_read_file, path, label, split)


def _read_file(path: str, label: str, split: str) -> tuple[bytes, str, str]:
    if FileSystems.get_scheme(path) is None:  # local: skip FileSystems' per-call plugin lookup
        with open(path, "rb") as f:
            return f.read(), label, split
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read(), label, split


class CheckRecords(_CheckTask):
    """A task is a list of (TFRecord file, serialized tf.train.Example) pairs."""

    def __init__(self, keys: sources.RecordFiles, *args):
        super().__init__(*args)
        self._keys = keys
        self._file_splits = dict(keys.files)
        self._found = beam.metrics.Metrics.counter("ingest", "records_found")

    def items(self, task):
        self._found.inc(len(task))
        for filename, raw in task:
            yield f"{filename}#{hashlib.sha256(raw).hexdigest()[:12]}", functools.partial(self._fields, filename, raw)

    def _fields(self, filename: str, raw: bytes) -> tuple[bytes, str, str]:
        keys = self._keys
        try:
            feature = record_format.example_pb2.Example.FromString(raw).features.feature
        except Exception:
            raise ValueError("not a serialized tf.train.Example") from None
        for key, setting in ((keys.image_key, "image_key"), (keys.label_key, "label_key")):
            if key not in feature:
                raise ValueError(
                    f"record has no feature {key!r} (it has {', '.join(sorted(feature))}); set data.tfrecord.{setting}"
                )
        data = bytes(feature[keys.image_key].bytes_list.value[0]) if feature[keys.image_key].bytes_list.value else b""
        label_feature = feature[keys.label_key]
        if label_feature.bytes_list.value:
            label = label_feature.bytes_list.value[0].decode()
        elif label_feature.int64_list.value:
            label_id = label_feature.int64_list.value[0]
            if keys.class_names and not 0 <= label_id < len(keys.class_names):
                raise ValueError(
                    f"label id {label_id} is outside data.tfrecord.class_names (0..{len(keys.class_names) - 1})"
                )
            label = keys.class_names[label_id] if keys.class_names else str(label_id)
        else:
            raise ValueError(f"feature {keys.label_key!r} is empty; every record needs a label")
        split = self._file_splits.get(filename, "")
        if keys.split_key and feature[keys.split_key].bytes_list.value:
            given = feature[keys.split_key].bytes_list.value[0].decode().lower()
            if given not in sources.SPLIT_ALIASES:
                raise ValueError(f"split {given!r} in feature {keys.split_key!r} is not one of train, val, test")
            split = sources.SPLIT_ALIASES[given]
        return data, label, split


class ToExamples(beam.DoFn):
    """Places each checked image by the split plan and completes its Example, tagged by split;
    also emits each split's statistics of the task (one accumulator, not one element per image)."""

    def __init__(self):
        self._counters = {split: beam.metrics.Metrics.counter("ingest", split) for split in SPLITS}

    def process(self, task: TaskResult, plan):
        labels = {name: record_format.label_bytes(i) for i, name in enumerate(plan.classes)}
        for item, reason in task.quarantined:
            yield beam.pvalue.TaggedOutput("quarantine", (item, reason))
        with FileSystems.open(task.spill, compression_type="uncompressed") as f:
            unlabelled = pickle.load(f)
        stats = ImageStatsFn()
        accumulators = {}
        for (candidate, meta), example in zip(task.checked, unlabelled, strict=True):
            split, reason = plan.place(candidate)
            if reason:
                yield beam.pvalue.TaggedOutput("quarantine", (candidate.source, reason))
                continue
            self._counters[split].inc()
            yield beam.pvalue.TaggedOutput(split, example + labels[candidate.label])
            stats.add_input(accumulators.setdefault(split, stats.create_accumulator()), meta)
        for split, accumulator in accumulators.items():
            yield beam.pvalue.TaggedOutput("stats", (split, accumulator))


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _previous_index(inputs: Inputs) -> dict[str, str]:
    if inputs.previous is None or not (inputs.previous.path / "split_index.json").is_file():
        return {}
    return json.loads((inputs.previous.path / "split_index.json").read_text())


def _pixel_fraction(listing: sources.Listing, sample: int) -> float:
    # Record sources are not counted before the pipeline runs: they measure every image.
    if not sample or not listing.entries or listing.records:
        return 1.0
    return min(1.0, sample / len(listing.entries))


# Why tasks mix classes: examples are written in the order tasks are done, and sources come
# in class order (class folders, often manifests and TFRecords too). Tasks of one class each
# would write class-sorted TFRecord shards, and training's bounded shuffle buffer would then
# see only a few classes at a time. So files are taken in the order of a hash of their path,
# and records are dealt into buckets by a hash of their bytes, then cut into tasks: fixed,
# and well spread. 1,024 buckets keep a bucket to about a thousand records at ImageNet size.
# (GroupIntoBatches would make the tasks directly, but its state makes the DirectRunner fall
# back to its old single-process engine.)
RECORD_BUCKETS = 1024


def _spread_order(entries: list[sources.Entry]) -> list[sources.Entry]:
    return sorted(entries, key=lambda e: hashlib.sha1(e.path.encode()).digest())


def build_pipeline(
    pipeline: beam.Pipeline,
    listing: sources.Listing,
    params: Params,
    previous_index: dict[str, str],
    out: str,
    spill_dir: str,
) -> None:
    data = params.data
    fractions = {"train": data.split.train, "val": data.split.val, "test": data.split.test}
    check_args = (data.max_pixels, params.channels, _pixel_fraction(listing, data.pixel_stats_sample), spill_dir)
    tasks = []
    if listing.entries:
        entries = [tuple(e) for e in _spread_order(listing.entries)]
        tasks.append(
            pipeline
            # Declared types: Beam would otherwise infer them by walking every entry.
            | "ListFiles"
            >> beam.Create(_chunks(entries, params.files_per_task), reshuffle=True).with_output_types(list)
            | "CheckFiles" >> beam.ParDo(CheckFiles(*check_args)).with_output_types(TaskResult)
        )
    if listing.records:
        tasks.append(
            pipeline
            | "ListRecordFiles" >> beam.Create([f for f, _ in listing.records.files])
            | "ReadRecords" >> ReadAllFromTFRecord(with_filename=True)
            | "SpreadRecords" >> beam.Map(lambda item: (zlib.crc32(item[1]) % RECORD_BUCKETS, item))
            | "DealRecords" >> beam.GroupByKey()
            | "Tasks" >> beam.FlatMapTuple(lambda _, dealt: _chunks(list(dealt), params.files_per_task))
            | "CheckRecords" >> beam.ParDo(CheckRecords(listing.records, *check_args)).with_output_types(TaskResult)
        )
    checked = tasks | "AllTasks" >> beam.Flatten()
    plan = (
        checked
        # One list of plain tuples per task: per-candidate elements would each pay Beam's
        # element cost, and named tuples its slow generic encoding.
        | "Candidates" >> beam.Map(lambda task: [tuple(c) for c, _ in task.checked])
        | "AllCandidates" >> beam.combiners.ToList()
        | "Plan"
        >> beam.Map(
            lambda lists: make_plan(
                map(Candidate._make, itertools.chain.from_iterable(lists)), fractions, previous_index
            )
        )
    )
    written = checked | "ToExamples" >> beam.ParDo(ToExamples(), plan=beam.pvalue.AsSingleton(plan)).with_outputs(
        "quarantine", "stats", *SPLITS
    )
    for split in SPLITS:
        written[split] | f"Write_{split}" >> beam.io.WriteToTFRecord(
            FileSystems.join(out, split, "data"), file_name_suffix=".tfrecord", num_shards=params.num_shards
        )
    stats = (
        written.stats
        | "SplitStats" >> beam.CombinePerKey(MergeImageStats())
        | "StatsBySplit" >> beam.combiners.ToDict()
    )
    quarantined = (
        (written.quarantine, pipeline | "ListedRejects" >> beam.Create(listing.rejected))
        | "AllQuarantined" >> beam.Flatten()
        | "QuarantineList" >> beam.combiners.ToList()
    )
    # The small outputs are written by one step (idempotent, so retries are safe): a Beam
    # file sink per output would add several pipeline stages each.
    plan | "WriteReports" >> beam.Map(
        _write_reports, out, stats=beam.pvalue.AsSingleton(stats), quarantined=beam.pvalue.AsSingleton(quarantined)
    )


def _write_reports(plan: Plan, out: str, stats: dict[str, dict], quarantined: list[tuple[str, str]]) -> None:
    report = dataclasses.asdict(plan)
    index = report.pop("index")
    files = {
        "plan.json": json.dumps(report, indent=2),
        "split_index.json": json.dumps(index),
        "split_stats.json": json.dumps({s: stats.get(s, empty_split()) for s in SPLITS}, indent=2),
        "quarantine.jsonl": "".join(json.dumps({"path": p, "reason": r}) + "\n" for p, r in sorted(quarantined)),
    }
    for name, text in files.items():
        with FileSystems.create(FileSystems.join(out, name)) as f:
            f.write(text.encode())


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    data = params.data
    fractions = (data.split.train, data.split.val, data.split.test)
    if any(v < 0 for v in fractions) or fractions[0] <= 0:
        raise DataError(f"data.split fractions must be >= 0 with train > 0; got {data.split}")
    listing = sources.list_source(data, ctx.run_root / "datasets")
    previous_index = _previous_index(inputs)
    out = outputs.examples.path
    ctx.log(
        f"{listing.description}: {len(listing.entries)} candidate files, {len(listing.rejected)} rejected"
        + (f", {len(listing.records.files)} TFRecord files" if listing.records else "")
        + (f"; {len(previous_index)} images keep their split from the previous ingest" if previous_index else "")
        + f"; Beam {' '.join(ctx.beam_args)}"
    )

    options = PipelineOptions(ctx.beam_args)
    # Workers on other machines cannot see our scratch folder: with a remote runner the spill
    # goes under its --temp_location (e.g. gs://bucket/tmp).
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    spill_dir = FileSystems.join(temp_location or str(ctx.scratch_dir), f"visionpipe-spill-{uuid.uuid4().hex}")
    FileSystems.mkdirs(spill_dir)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, listing, params, previous_index, str(out), spill_dir)
    result = pipeline.run()
    result.wait_until_finish()
    FileSystems.delete([spill_dir])

    counters = {
        m.key.metric.name: m.committed
        for m in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]
    }
    counts = {split: counters.get(split, 0) for split in SPLITS}
    found = len(listing.entries) + len(listing.rejected) + counters.get("records_found", 0)
    quarantined = sum(1 for line in (out / "quarantine.jsonl").open() if line.strip())
    ingested = sum(counts.values())
    plan = json.loads((out / "plan.json").read_text())
    (out / "classes.json").write_text(
        json.dumps(
            {
                "classes": plan["classes"],
                "empty_classes": listing.empty_classes,
                "source": listing.description,
                "pre_split": listing.pre_split,
            },
            indent=2,
        )
    )
    summary = {
        "found": found,
        "ingested": ingested,
        "quarantined": quarantined,
        "classes": len(plan["classes"]),
        **{f"{s}_images": n for s, n in counts.items()},
        "duplicate_groups": len(plan["duplicates_in_split"]),
        "leaked_copies": len(plan["leakage"]),
    }
    outputs.examples.properties.update(summary, split_names=list(SPLITS), classes=plan["classes"])
    ctx.log(
        f"found {found} = ingested {ingested} + quarantined {quarantined}; "
        + ", ".join(f"{s}: {n}" for s, n in counts.items())
    )
    if ingested + quarantined != found:
        raise RuntimeError(f"ingest lost items: found {found}, ingested {ingested}, quarantined {quarantined}")
    return summary
