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
    multi_hot: int = 0,
) -> tf.data.Dataset:
    """Parsed examples of one split: dicts with encoded bytes, label id and source path (and,
    with ``origin``, the original mode, height and width). ``multi_hot`` > 0: multi-label records
    with that many labels, whose label comes as an int32 multi-hot vector."""
    features = record_format.tf_parse_spec(origin, multi_hot > 0) if origin or multi_hot else _FEATURES

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, features)
        if multi_hot:
            ids = parsed[record_format.LABEL].values
            parsed[record_format.LABEL] = tf.minimum(
                tf.reduce_sum(tf.one_hot(ids, multi_hot, dtype=tf.int32), axis=0), 1
            )
        return parsed

    return serialized_records(examples_dir, split, shuffle_files, seed, deterministic).map(
        parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def prefetched(ds: tf.data.Dataset, deterministic: bool = True) -> tf.data.Dataset:
    """The last step of every pipeline a model or client reads: prefetch, and tf.data's options.

    tf.data's autotuning *model* is off. With it on, each iterator runs an optimisation thread
    that sleeps between passes (the sleep doubles up to 60 s), and in TensorFlow 2.21 deleting
    the iterator waited out that sleep in one run of two: Keras' ``fit`` returned 15-40 s after
    its last step (BENCHMARKS.md "The fit pause"). Without the model, ``AUTOTUNE`` still means
    something sensible: parallel calls as many as the cores (at most 16) and a prefetch buffer
    that grows while the consumer waits. Measured on the training pipeline: the same images/s.
    """
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(AUTOTUNE)


def encoded_images(examples_dir: Path, split: str, batch_size: int, multi_hot: int = 0) -> tf.data.Dataset:
    """Batches of (encoded bytes, label id): what a serving client would send. ``multi_hot`` > 0:
    multi-label records with that many labels, whose labels come as multi-hot vectors."""
    return (
        records(examples_dir, split, multi_hot=multi_hot)
        .map(lambda r: (r[record_format.ENCODED], r[record_format.LABEL]))
        .batch(batch_size)
        .apply(prefetched)
    )
