"""Ingest throughput on an image folder: visionpipe's Beam ingest vs. two baselines, same run.

- plain loop: one Python process doing the same per-file work as an ingest worker (read,
  full decode check, hash, build the tf.train.Example, write a TFRecord file);
- decode limit: tf.data reading and decoding the same files in parallel (no checks, no
  writing): what the machine can do at best;
- visionpipe: the ingest stage (listing, fingerprint, Beam pipeline, split plan, TFRecords),
  and ingest + validate (statistics, schema, anomalies), through ``run_pipeline`` (``--mode``:
  the DirectRunner mode, auto by default: worker processes only when they pay).

Each is run ``--repeats`` times, interleaved, and the medians and their ratios are printed.

    python benchmarks/ingest_throughput.py /tmp/cifar10/train --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ratios import Rates

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def image_files(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files[:limit] if limit else files


def linked_subset(files: list[Path]) -> Path:
    """A folder of class sub-folders linking ``files`` (the stages ingest whole folders)."""
    folder = Path(tempfile.mkdtemp(prefix="vp-bench-subset-"))
    for path in files:
        (folder / path.parent.name).mkdir(exist_ok=True)
        os.symlink(path, folder / path.parent.name / path.name)
    return folder


def plain_loop(files: list[Path], out: Path, channels: int) -> float:
    import tensorflow as tf

    from visionpipe.data import record_format
    from visionpipe.data.images import BadImage, check_image

    start = time.perf_counter()
    with tf.io.TFRecordWriter(str(out / "plain.tfrecord")) as writer:
        for path in files:
            try:
                image = check_image(path.read_bytes(), 50_000_000, channels)
            except BadImage:  # set aside, as ingest quarantines it
                continue
            writer.write(record_format.serialize(image.record(path.parent.name, str(path), label=0)))
    return time.perf_counter() - start


def decode_limit(files: list[Path], channels: int) -> float:
    import tensorflow as tf

    start = time.perf_counter()
    ds = (
        tf.data.Dataset.from_tensor_slices([str(p) for p in files])
        .map(
            lambda p: tf.io.decode_image(tf.io.read_file(p), channels=channels, expand_animations=False),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .ignore_errors()
        .ragged_batch(256)  # images of any size, as a folder holds them
        .prefetch(tf.data.AUTOTUNE)
    )
    for _ in ds:
        pass
    return time.perf_counter() - start


def visionpipe_stages(folder: Path, root: Path, channels: int, workers: int, mode: str) -> tuple[float, float]:
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(
        None,
        [
            f"run.root={root}",
            "data.source=folder",
            f"data.path={folder}",
            f"preprocessing.channels={channels}",
            f"beam.direct_num_workers={workers}",
            f"beam.direct_running_mode={mode}",
        ],
    )
    start = time.perf_counter()
    result = run_pipeline(config, only="ingest")
    ingest = time.perf_counter() - start
    assert result.ok, result.failure()
    start = time.perf_counter()
    result = run_pipeline(config, only="validate")
    assert result.ok, result.failure()
    return ingest, ingest + time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of class sub-folders, e.g. /tmp/cifar10/train")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Beam DirectRunner worker processes")
    parser.add_argument("--mode", default="auto", help="beam.direct_running_mode: auto, in_memory or multi_processing")
    args = parser.parse_args()
    files = image_files(args.folder, args.limit)
    folder = linked_subset(files) if args.limit else args.folder
    for path in files:  # warm the page cache so the first contender is not penalised
        path.read_bytes()

    rates = Rates()
    for repeat in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="vp-bench-"))
        seconds = {
            "plain loop": plain_loop(files, work, args.channels),
            "decode limit (tf.data)": decode_limit(files, args.channels),
        }
        seconds["visionpipe ingest"], seconds["visionpipe ingest+validate"] = visionpipe_stages(
            folder, work / "root", args.channels, args.workers, args.mode
        )
        shutil.rmtree(work)
        rates.add_repeat(repeat, {name: len(files) / s for name, s in seconds.items()})

    runner = f"DirectRunner mode {args.mode}, {args.workers} workers"
    print(f"\n{len(files)} images, medians of {args.repeats} repeats; {runner}")
    print(rates.table({"vs plain loop": "plain loop", "vs decode limit": "decode limit (tf.data)"}))


if __name__ == "__main__":
    main()
