"""The one definition of an ingested record: a tf.train.Example and its feature names.

ingest writes these records, validate aggregates their per-image statistics, and the tf.data
pipelines parse them. Beam workers build and read them with TFDS's copy of the Example
proto (wire-identical to TensorFlow's), so a worker never pays TensorFlow's import time.
"""

from __future__ import annotations

import dataclasses
import os

from tensorflow_datasets.proto import tf_example_generated_pb2 as example_pb2

ENCODED = "image/encoded"  # JPEG or PNG bytes every runtime decodes the same way
LABEL = "image/label"  # int64 class id (index into classes.json); multi-label: one per label, or none
CLASS_NAME = "image/class_name"  # multi-label: the label set, as ``label_sets.encode`` spells it
SOURCE = "image/source"  # where the user had it: a path, manifest row or record id
SHA256 = "image/sha256"  # of the original bytes, so duplicates are found on what the user has
FORMAT = "image/format"  # original format (JPEG, PNG, BMP, ...)
MODE = "image/mode"  # original Pillow mode (L, RGB, CMYK, I;16, ...)
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"  # of the original
CONVERTED = "image/converted"  # 1 when re-encoded (odd format/mode, EXIF rotation)


@dataclasses.dataclass(frozen=True)
class Record:
    encoded: bytes
    label: int
    class_name: str
    source: str
    sha256: str
    format: str
    mode: str
    height: int
    width: int
    channels: int
    converted: bool


def serialize(record: Record) -> bytes:
    return serialize_unlabelled(record) + label_bytes([record.label])


def label_bytes(labels: list[int]) -> bytes:
    """An Example holding only the label feature: one class id, or a multi-label image's ids.

    Protobuf merges concatenated messages, so ``serialize_unlabelled(r) + label_bytes(i)`` is
    the complete Example: workers serialize images before the class ids are known and the
    label is appended later without parsing anything again.
    """
    example = example_pb2.Example()
    example.features.feature[LABEL].int64_list.value.extend(labels)
    return example.SerializeToString()


def serialize_unlabelled(record: Record) -> bytes:
    example = example_pb2.Example()
    feature = example.features.feature
    for key, value in (
        (ENCODED, record.encoded),
        (CLASS_NAME, record.class_name.encode()),
        (SOURCE, record.source.encode()),
        (SHA256, record.sha256.encode()),
        (FORMAT, record.format.encode()),
        (MODE, record.mode.encode()),
    ):
        feature[key].bytes_list.value.append(value)
    for key, number in (
        (HEIGHT, record.height),
        (WIDTH, record.width),
        (CHANNELS, record.channels),
        (CONVERTED, int(record.converted)),
    ):
        feature[key].int64_list.value.append(number)
    return example.SerializeToString()


def parse(serialized: bytes, with_image: bool = True) -> Record:
    feature = example_pb2.Example.FromString(serialized).features.feature

    def text(key: str) -> str:
        return feature[key].bytes_list.value[0].decode()

    def number(key: str) -> int:
        return feature[key].int64_list.value[0]

    return Record(
        encoded=feature[ENCODED].bytes_list.value[0] if with_image else b"",
        label=number(LABEL),
        class_name=text(CLASS_NAME),
        source=text(SOURCE),
        sha256=text(SHA256),
        format=text(FORMAT),
        mode=text(MODE),
        height=number(HEIGHT),
        width=number(WIDTH),
        channels=number(CHANNELS),
        converted=bool(number(CONVERTED)),
    )


def tf_parse_spec(origin: bool = False, multi_label: bool = False) -> dict:
    """What the tf.data pipelines read: image bytes, label id (multi-label: the ids, a sparse
    tensor) and source; with ``origin`` also the original mode, height and width (evaluate's slices)."""
    import tensorflow as tf

    spec = {
        ENCODED: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.VarLenFeature(tf.int64) if multi_label else tf.io.FixedLenFeature([], tf.int64),
        SOURCE: tf.io.FixedLenFeature([], tf.string),
    }
    if origin:
        spec.update({MODE: tf.io.FixedLenFeature([], tf.string, default_value="")})
        spec.update({key: tf.io.FixedLenFeature([], tf.int64, default_value=0) for key in (HEIGHT, WIDTH)})
    return spec


def located(source: str, root: str = "") -> str:
    """A SOURCE as one spelling for comparing and showing it: a local path absolute and
    normalised (a relative one taken from ``root``, else the working folder); a remote path
    (``scheme://...``) or a TFRecord record (``file#hash``) as written."""
    if "://" in source or "#" in source:
        return source
    return os.path.normpath(os.path.join(os.path.abspath(root or "."), source))
