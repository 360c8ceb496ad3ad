"""Reading the ingested TFRecord files of one split with tf.data: parsed records and the encoded
images a serving client would send. The model-facing pipelines (decode, resize, batch) build on
these in ``components/common/dataset.py``."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from visionpipe.data import record_format

AUTOTUNE = tf.data.AUTOTUNE
_FEATURES = record_format.tf_parse_spec()


def split_files(examples_dir: Path, split: str) -> list[str]:
    files = sorted(str(p) for p in (Path(examples_dir) / split).glob("data-*"))
    if not files:
        raise FileNotFoundError(f"no TFRecord files for split {split!r} under {examples_dir}")
    return files


def serialized_records(
    examples_dir: Path, split: str, shuffle_files: bool, seed: int | None, deterministic: bool
) -> tf.data.Dataset:
    paths = split_files(examples_dir, split)
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_files:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(paths), 16),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )


def records(
    examples_dir: Path,
    split: str,
    shuffle_files: bool = False,
    seed: int | None = None,
    deterministic: bool = True,
    origin: bool = False,
    multi_label: bool = False,
) -> tf.data.Dataset:
    """Parsed examples of one split: dicts with encoded bytes, label id (``multi_label``: the
    label ids, dense, -1 padded in batches) and source path (and, with ``origin``, the original
    mode, height and width)."""
    features = record_format.tf_parse_spec(origin, multi_label) if origin or multi_label else _FEATURES

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, features)
        if multi_label:
            parsed[record_format.LABEL] = tf.sparse.to_dense(parsed[record_format.LABEL])
        return parsed

    return serialized_records(examples_dir, split, shuffle_files, seed, deterministic).map(
        parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def encoded_images(examples_dir: Path, split: str, batch_size: int) -> tf.data.Dataset:
    """Batches of (encoded bytes, label id): what a serving client would send."""
    return (
        records(examples_dir, split)
        .map(lambda r: (r[record_format.ENCODED], r[record_format.LABEL]))
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
