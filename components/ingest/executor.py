"""ingest executor: a Beam pipeline that reads, checks, splits and writes every image.

Workers take files (or TFRecord records) in tasks of ``beam.files_per_task``: reading,
fully decoding, hashing and measuring a few hundred images per call keeps Beam's per-element
cost out of the per-image cost. The content hashes then meet in one split plan (see
``split.py``), and each image is written as a tf.train.Example to ``<split>/data-*.tfrecord``.
Unusable items go to ``quarantine.jsonl`` with the reason: found = ingested + quarantined,
always, and the run prints all three.

Outputs besides the records: ``classes.json``, ``split_index.json`` (content hash -> split,
read by the next ingest so old images keep their split) and ``plan.json`` (duplicates,
leakage, label conflicts, for validate).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import ReadAllFromTFRecord
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from components.common import record_format
from components.ingest import images, sources
from components.ingest.spec import Inputs, Outputs, Params
from components.ingest.split import SPLITS, Candidate, make_plan
from pipeline.errors import DataError
from pipeline.stage import StageContext


class TaskResult(NamedTuple):
    # Each image as its candidate and its serialized Example still without the label id
    # (class ids are only known once every task has reported its classes).
    checked: list[tuple[Candidate, bytes]]
    quarantined: list[tuple[str, str]]  # (item, reason)


def _unlabelled_example(candidate: Candidate, image: images.CheckedImage) -> bytes:
    return record_format.serialize_unlabelled(record_format.Record(
        encoded=image.data, label=-1, class_name=candidate.label, source=candidate.source, sha256=image.sha256,
        format=image.format, mode=image.mode, height=image.height, width=image.width, channels=image.channels,
        converted=image.converted))


class CheckFiles(beam.DoFn):
    """A list of entries -> one TaskResult: every file read, decoded, hashed and measured."""

    def __init__(self, max_pixels: int, channels: int):
        self._max_pixels, self._channels = max_pixels, channels

    def process(self, entries: list[tuple[str, str, str]]):
        result = TaskResult([], [])
        for entry in map(sources.Entry._make, entries):
            try:
                with FileSystems.open(entry.path, compression_type="uncompressed") as f:
                    data = f.read()
                image = images.check_image(data, self._max_pixels, self._channels)
            except images.BadImage as err:
                result.quarantined.append((entry.path, str(err)))
            except OSError as err:  # unreadable file, broken symlink, permission denied
                result.quarantined.append((entry.path, f"cannot read file: {err.strerror or err}"))
            else:
                candidate = Candidate(entry.path, image.sha256, entry.label, entry.split)
                result.checked.append((candidate, _unlabelled_example(candidate, image)))
        yield result


class CheckRecords(beam.DoFn):
    """A batch of (file, serialized tf.train.Example) -> one TaskResult."""

    def __init__(self, keys: sources.RecordFiles, max_pixels: int, channels: int):
        self._keys, self._max_pixels, self._channels = keys, max_pixels, channels
        self._file_splits = dict(keys.files)

    def process(self, batch: list[tuple[str, bytes]]):
        result = TaskResult([], [])
        for filename, raw in batch:
            where = f"{filename}#{hashlib.sha256(raw).hexdigest()[:12]}"
            try:
                data, label, split = self._fields(filename, raw)
                image = images.check_image(data, self._max_pixels, self._channels)
            except (images.BadImage, ValueError) as err:
                result.quarantined.append((where, str(err)))
            else:
                candidate = Candidate(where, image.sha256, label, split)
                result.checked.append((candidate, _unlabelled_example(candidate, image)))
        yield result

    def _fields(self, filename: str, raw: bytes) -> tuple[bytes, str, str]:
        keys = self._keys
        try:
            feature = record_format.example_pb2.Example.FromString(raw).features.feature
        except Exception:
            raise ValueError("not a serialized tf.train.Example") from None
        for key, setting in ((keys.image_key, "image_key"), (keys.label_key, "label_key")):
            if key not in feature:
                raise ValueError(f"record has no feature {key!r} (it has {', '.join(sorted(feature))}); "
                                 f"set data.tfrecord.{setting}")
        data = bytes(feature[keys.image_key].bytes_list.value[0]) if feature[keys.image_key].bytes_list.value else b""
        label_feature = feature[keys.label_key]
        if label_feature.bytes_list.value:
            label = label_feature.bytes_list.value[0].decode()
        elif label_feature.int64_list.value:
            label_id = label_feature.int64_list.value[0]
            if keys.class_names and not 0 <= label_id < len(keys.class_names):
                raise ValueError(f"label id {label_id} is outside data.tfrecord.class_names "
                                 f"(0..{len(keys.class_names) - 1})")
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
    """Places each checked image by the split plan and completes its Example, tagged by split."""

    def __init__(self):
        self._counters = {split: beam.metrics.Metrics.counter("ingest", split) for split in SPLITS}

    def process(self, task: TaskResult, plan):
        labels = {name: record_format.label_bytes(i) for i, name in enumerate(plan.classes)}
        for item, reason in task.quarantined:
            yield beam.pvalue.TaggedOutput("quarantine", (item, reason))
        for candidate, unlabelled in task.checked:
            split, reason = plan.place(candidate)
            if reason:
                yield beam.pvalue.TaggedOutput("quarantine", (candidate.source, reason))
                continue
            self._counters[split].inc()
            yield beam.pvalue.TaggedOutput(split, unlabelled + labels[candidate.label])


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _previous_index(inputs: Inputs) -> dict[str, str]:
    if inputs.previous is None or not (inputs.previous.path / "split_index.json").is_file():
        return {}
    return json.loads((inputs.previous.path / "split_index.json").read_text())


def build_pipeline(pipeline: beam.Pipeline, listing: sources.Listing, params: Params,
                   previous_index: dict[str, str], out: str) -> None:
    data = params.data
    fractions = {"train": data.split.train, "val": data.split.val, "test": data.split.test}
    tasks = []
    if listing.entries:
        tasks.append(pipeline
                     # Declared types: Beam would otherwise infer them by walking every entry.
                     | "ListFiles" >> beam.Create(_chunks([tuple(e) for e in listing.entries], params.files_per_task),
                                                reshuffle=True).with_output_types(list)
                     | "CheckFiles" >> beam.ParDo(CheckFiles(data.max_pixels, params.channels)))
    if listing.records:
        tasks.append(pipeline
                     | "ListRecordFiles" >> beam.Create([f for f, _ in listing.records.files])
                     | "ReadRecords" >> ReadAllFromTFRecord(with_filename=True)
                     | "CountRecords" >> beam.Map(_count("records_found"))
                     | "BatchRecords" >> beam.BatchElements(min_batch_size=params.files_per_task,
                                                            max_batch_size=params.files_per_task)
                     | "CheckRecords" >> beam.ParDo(CheckRecords(listing.records, data.max_pixels, params.channels)))
    checked = tasks | "AllTasks" >> beam.Flatten()
    plan = (checked
            | "Candidates" >> beam.FlatMap(lambda task: [c for c, _ in task.checked])
            | "AllCandidates" >> beam.combiners.ToList()
            | "Plan" >> beam.Map(make_plan, fractions, previous_index))
    written = checked | "ToExamples" >> beam.ParDo(ToExamples(), plan=beam.pvalue.AsSingleton(plan)).with_outputs(
        "quarantine", *SPLITS)
    for split in SPLITS:
        written[split] | f"Write_{split}" >> beam.io.WriteToTFRecord(
            FileSystems.join(out, split, "data"), file_name_suffix=".tfrecord", num_shards=params.num_shards)
    ((written.quarantine, pipeline | "ListedRejects" >> beam.Create(listing.rejected))
     | "AllQuarantined" >> beam.Flatten()
     | "QuarantineJson" >> beam.Map(lambda item: json.dumps({"path": item[0], "reason": item[1]}))
     | "WriteQuarantine" >> beam.io.WriteToText(FileSystems.join(out, "quarantine"), file_name_suffix=".jsonl",
                                                shard_name_template=""))
    (plan
     | "PlanJson" >> beam.Map(lambda p: json.dumps(dataclasses.asdict(p)))
     | "WritePlan" >> beam.io.WriteToText(FileSystems.join(out, "plan"), file_name_suffix=".json",
                                          shard_name_template=""))


def _count(name: str):
    counter = beam.metrics.Metrics.counter("ingest", name)

    def count(item):
        counter.inc()
        return item
    return count


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    data = params.data
    fractions = (data.split.train, data.split.val, data.split.test)
    if any(v < 0 for v in fractions) or fractions[0] <= 0:
        raise DataError(f"data.split fractions must be >= 0 with train > 0; got {data.split}")
    listing = sources.list_source(data, ctx.run_root / "datasets")
    previous_index = _previous_index(inputs)
    out = outputs.examples.path
    ctx.log(f"{listing.description}: {len(listing.entries)} candidate files, {len(listing.rejected)} rejected"
            + (f", {len(listing.records.files)} TFRecord files" if listing.records else "")
            + (f"; {len(previous_index)} images keep their split from the previous ingest" if previous_index else "")
            + f"; Beam {' '.join(ctx.beam_args)}")

    pipeline = beam.Pipeline(options=PipelineOptions(ctx.beam_args))
    build_pipeline(pipeline, listing, params, previous_index, str(out))
    result = pipeline.run()
    result.wait_until_finish()

    counters = {m.key.metric.name: m.committed
                for m in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]}
    counts = {split: counters.get(split, 0) for split in SPLITS}
    found = len(listing.entries) + len(listing.rejected) + counters.get("records_found", 0)
    quarantined = sum(1 for line in (out / "quarantine.jsonl").open() if line.strip())
    ingested = sum(counts.values())
    plan = json.loads((out / "plan.json").read_text())
    (out / "split_index.json").write_text(json.dumps(plan.pop("index")))
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    (out / "classes.json").write_text(json.dumps({
        "classes": plan["classes"], "empty_classes": listing.empty_classes, "source": listing.description,
        "pre_split": listing.pre_split}, indent=2))
    summary = {"found": found, "ingested": ingested, "quarantined": quarantined, "classes": len(plan["classes"]),
               **{f"{s}_images": n for s, n in counts.items()},
               "duplicate_groups": len(plan["duplicates_in_split"]), "leaked_copies": len(plan["leakage"])}
    outputs.examples.properties.update(summary, split_names=list(SPLITS), classes=plan["classes"])
    ctx.log(f"found {found} = ingested {ingested} + quarantined {quarantined}; "
            + ", ".join(f"{s}: {n}" for s, n in counts.items()))
    if ingested + quarantined != found:
        raise RuntimeError(f"ingest lost items: found {found}, ingested {ingested}, quarantined {quarantined}")
    return summary
