"""ingest executor: a Beam pipeline that reads, checks, splits and writes every image.

Each listed file is read and fully decoded in a worker; usable images become tf.train.Example
records (encoded bytes, label id and name, source path, content hash, original size/mode) in
``<split>/data-*.tfrecord``; unusable ones go to ``quarantine.jsonl`` with the reason.
found = ingested + quarantined always holds, and the run prints all three.
"""
from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from components.ingest import images, sources
from components.ingest.spec import Inputs, Outputs, Params
from components.ingest.split import SPLITS, assign_splits
from pipeline.errors import DataError
from pipeline.stage import StageContext


class CheckFile(beam.DoFn):
    """(path, class) -> record dict, or a (path, reason) on the 'quarantine' output."""

    def __init__(self, class_ids: dict[str, int], max_pixels: int):
        self._class_ids = class_ids
        self._max_pixels = max_pixels

    def process(self, item):
        path, class_name = item
        try:
            with FileSystems.open(path) as f:
                data = f.read()
            checked = images.check_image(data, self._max_pixels)
        except images.BadImage as err:
            yield beam.pvalue.TaggedOutput("quarantine", (path, str(err)))
            return
        except OSError as err:  # unreadable file, broken symlink, permission denied
            yield beam.pvalue.TaggedOutput("quarantine", (path, f"cannot read file: {err.strerror or err}"))
            return
        yield {"path": path, "class_name": class_name, "label": self._class_ids[class_name],
               "image": checked}


def to_example(record: dict) -> bytes:
    import tensorflow as tf  # imported in the worker; the driver never needs it

    image: images.CheckedImage = record["image"]

    def b(value: str | bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value if isinstance(value, bytes) else value.encode()]))

    def i(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": b(image.data), "image/label": i(record["label"]),
        "image/class_name": b(record["class_name"]), "image/source": b(record["path"]),
        "image/sha256": b(image.sha256), "image/format": b(image.format), "image/mode": b(image.mode),
        "image/height": i(image.height), "image/width": i(image.width), "image/channels": i(image.channels),
        "image/converted": i(int(image.converted)),
    })).SerializeToString()


def _assign(class_and_hashes, fractions):
    label, hashes = class_and_hashes
    return [((label, sha), split) for sha, split in assign_splits(hashes, fractions).items()]


def _count(split: str):
    counter = beam.metrics.Metrics.counter("ingest", split)

    def count(example: bytes) -> bytes:
        counter.inc()
        return example
    return count


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    data = params.data
    if data.source == "folder" and not data.path:
        raise DataError("data.source is 'folder' but data.path is empty; set data.path to your image folder")
    folder = (sources.materialize_builtin(data.builtin_name, ctx.run_root / "datasets")
              if data.source == "builtin" else Path(data.path))
    listing = sources.list_folder(folder, data.extensions)
    class_ids = {name: i for i, name in enumerate(listing.classes)}
    fractions = {"train": data.split.train, "val": data.split.val, "test": data.split.test}
    if any(v < 0 for v in fractions.values()) or fractions["train"] <= 0:
        raise DataError(f"data.split fractions must be >= 0 with train > 0; got {fractions}")
    out = outputs.examples.path
    found = len(listing.files) + len(listing.rejected)
    ctx.log(f"{found} files found in {folder}: {len(listing.files)} candidate images in "
            f"{len(listing.classes)} classes; reading with {' '.join(ctx.beam_args)}")

    pipeline = beam.Pipeline(options=PipelineOptions(ctx.beam_args))
    checked = (pipeline
               | "ListFiles" >> beam.Create(listing.files, reshuffle=True)
               | "ReadAndCheck" >> beam.ParDo(CheckFile(class_ids, data.max_pixels)).with_outputs(
                   "quarantine", main="ok"))
    split_of = (checked.ok
                | "KeyByClass" >> beam.Map(lambda r: (r["label"], r["image"].sha256))
                | "GroupByClass" >> beam.GroupByKey()
                | "AssignSplits" >> beam.FlatMap(_assign, fractions))
    by_split = (checked.ok
                | "AttachSplit" >> beam.Map(
                    lambda r, splits: (splits[(r["label"], r["image"].sha256)], r),
                    splits=beam.pvalue.AsDict(split_of))
                | "PartitionBySplit" >> beam.Partition(lambda kv, _: SPLITS.index(kv[0]), len(SPLITS)))
    for split, part in zip(SPLITS, by_split):
        (part
         | f"ToExample_{split}" >> beam.Map(lambda kv: to_example(kv[1]))
         | f"Count_{split}" >> beam.Map(_count(split))
         | f"Write_{split}" >> beam.io.WriteToTFRecord(
             str(out / split / "data"), file_name_suffix=".tfrecord", num_shards=params.num_shards))
    rejected = pipeline | "ListedRejects" >> beam.Create(listing.rejected)
    ((checked.quarantine, rejected)
     | "AllQuarantined" >> beam.Flatten()
     | "QuarantineJson" >> beam.Map(lambda pr: json.dumps({"path": pr[0], "reason": pr[1]}))
     | "WriteQuarantine" >> beam.io.WriteToText(str(out / "quarantine"), file_name_suffix=".jsonl",
                                                shard_name_template=""))
    result = pipeline.run()
    result.wait_until_finish()

    counts = {split: 0 for split in SPLITS}
    for metric in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]:
        counts[metric.key.metric.name] += metric.committed
    quarantined = sum(1 for _ in (out / "quarantine.jsonl").open())
    ingested = sum(counts.values())
    summary = {"found": found, "ingested": ingested, "quarantined": quarantined,
               "classes": len(listing.classes), **{f"{s}_images": n for s, n in counts.items()}}
    (out / "classes.json").write_text(json.dumps({
        "classes": listing.classes, "empty_classes": listing.empty_classes, "source": str(folder)}, indent=2))
    outputs.examples.properties.update(summary, split_names=list(SPLITS), classes=listing.classes)
    ctx.log(f"found {found} = ingested {ingested} + quarantined {quarantined}; "
            + ", ".join(f"{s}: {n}" for s, n in counts.items()))
    if ingested + quarantined != found:
        raise RuntimeError(f"ingest lost files: found {found}, ingested {ingested}, quarantined {quarantined}")
    return summary
