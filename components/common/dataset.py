"""tf.data input pipelines over the ingested TFRecords, for train, evaluate and export.

Images go through ``models.preprocessing.load_image`` (the same code as the serving
signature); labels come out one-hot so label smoothing and mixing augmentations work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import tensorflow as tf

from components.common import record_format
from models.preprocessing import PreprocessingSpec, load_image

AUTOTUNE = tf.data.AUTOTUNE
_FEATURES = record_format.tf_parse_spec()


def split_files(examples_dir: Path, split: str) -> list[str]:
    files = sorted(str(p) for p in (Path(examples_dir) / split).glob("data-*"))
    if not files:
        raise FileNotFoundError(f"no TFRecord files for split {split!r} under {examples_dir}")
    return files


def records(examples_dir: Path, split: str, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Parsed examples of one split: dicts with encoded bytes, label id and source path."""
    files = tf.data.Dataset.from_tensor_slices(split_files(examples_dir, split))
    if shuffle_files:
        files = files.shuffle(len(files), seed=seed)
    return (files
            .interleave(tf.data.TFRecordDataset, num_parallel_calls=AUTOTUNE, deterministic=not shuffle_files)
            .map(lambda x: tf.io.parse_single_example(x, _FEATURES), num_parallel_calls=AUTOTUNE))


def image_dataset(examples_dir: Path, split: str, spec: PreprocessingSpec, num_classes: int,
                  batch_size: int, training: bool = False, seed: int | None = None,
                  shuffle_buffer: int = 10000, cache: bool = False,
                  augment: Callable[[tf.Tensor], tf.Tensor] | None = None) -> tf.data.Dataset:
    """Batches of (images in [0, 1], one-hot labels). Training shuffles and augments."""
    ds = records(examples_dir, split, shuffle_files=training, seed=seed).map(
        lambda r: (load_image(r[record_format.ENCODED], spec), tf.one_hot(r[record_format.LABEL], num_classes)),
        num_parallel_calls=AUTOTUNE, deterministic=not training)
    if cache:  # decoded images: later epochs skip reading and decoding entirely
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    if training and augment is not None:
        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def encoded_images(examples_dir: Path, split: str, batch_size: int) -> tf.data.Dataset:
    """Batches of (encoded bytes, label id): what a serving client would send."""
    return (records(examples_dir, split)
            .map(lambda r: (r[record_format.ENCODED], r[record_format.LABEL]))
            .batch(batch_size).prefetch(AUTOTUNE))
