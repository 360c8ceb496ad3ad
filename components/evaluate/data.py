"""The evaluated split: what evaluate keeps of every image (label, source path, original size
and colour mode) and its images, handed out in bounded batches to every pass that needs them
(scoring, TTA, robustness, the error gallery, the served model).

A split whose fitted 8-bit images fit in ``IN_MEMORY_BYTES`` is decoded once and held (3 KB
per 32x32 image); a bigger one is read from its records again by each pass, so evaluate's
memory does not grow with the split beyond its per-image metadata and probabilities (a
100,000-image split at 224x224 would hold 15 GB). The served model's pass always reads the
records, since it takes the encoded bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import tensorflow as tf

from visionpipe.data import record_format
from visionpipe.data.records import encoded_images, prefetched, records
from visionpipe.models.preprocessing import PreprocessingSpec, load_pixels, to_float

# Decoded images held at most: 256 MiB (about 1,700 images at 224x224, 87,000 at 32x32). A
# bigger split is decoded again by each pass, which costs seconds; holding 100,000 32x32 test
# images (300 MB) was half of evaluate's memory at a million images.
IN_MEMORY_BYTES = 1 << 28


class Pixels(Protocol):
    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        """uint8 images of ``indices`` (sorted, no repeats) in that order, ``batch_size`` at a time."""
        ...


@dataclasses.dataclass
class InMemory:
    images: np.ndarray  # uint8 [N, H, W, C]

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(indices), batch_size):
            yield self.images[indices[start : start + batch_size]]


@dataclasses.dataclass
class FromRecords:
    """The split's images decoded from its records on each call; only the chosen ones."""

    examples_dir: Path
    split: str
    spec: PreprocessingSpec
    count: int
    multi_hot: int = 0  # multi-label records: their labels parse as vectors of this length

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        ds = records(self.examples_dir, self.split, multi_hot=self.multi_hot)
        if len(indices) < self.count:  # skip the others before decoding them
            chosen = np.zeros(self.count, bool)
            chosen[indices] = True
            mask = tf.constant(chosen)
            ds = ds.enumerate().filter(lambda i, _: mask[i]).map(lambda _, record: record)
        decoded = ds.map(
            lambda r: load_pixels(r[record_format.ENCODED], self.spec), num_parallel_calls=tf.data.AUTOTUNE
        )
        yield from prefetched(decoded.batch(batch_size)).as_numpy_iterator()


@dataclasses.dataclass
class EvalSplit:
    pixels: Pixels  # the images fitted to the model's input as every runtime fits them
    labels: np.ndarray  # int [N]; multi-label: uint8 multi-hot [N, labels]
    sources: list[str]
    heights: np.ndarray
    widths: np.ndarray
    modes: list[str]
    image_size: tuple[int, int]  # the model's input (height, width)
    examples_dir: Path | None = None  # where the encoded images are read from (for the served model)
    split: str = ""
    multi_hot: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int = 256, indices: np.ndarray | None = None):
        """(float [0, 1] images as the model receives them, label ids) batches, in split order or
        in the order of ``indices``."""
        wanted = np.arange(len(self)) if indices is None else np.asarray(indices)
        ordered = np.unique(wanted)
        if np.array_equal(ordered, wanted):
            start = 0
            for images in self.pixels.batches(wanted, batch_size):
                chosen = wanted[start : start + len(images)]
                start += len(images)
                yield to_float(tf.constant(images)), self.labels[chosen]
            return
        # Another order (the gallery's few): read them all, then hand them out in that order.
        images = np.concatenate(list(self.pixels.batches(ordered, batch_size)))
        at = np.searchsorted(ordered, wanted)
        for start in range(0, len(wanted), batch_size):
            part = slice(start, start + batch_size)
            yield to_float(tf.constant(images[at[part]])), self.labels[wanted[part]]

    def encoded_batches(self, batch_size: int = 256):
        """(encoded image bytes, label ids) batches, in order: what a serving client sends."""
        if self.examples_dir is None:
            raise ValueError("this split was not read from records: it has no encoded images")
        start = 0
        for batch, _ in encoded_images(self.examples_dir, self.split, batch_size, self.multi_hot):
            yield batch, self.labels[start : start + len(batch)]
            start += len(batch)


def load_split(examples_dir: Path, split: str, spec: PreprocessingSpec, multi_hot: int = 0) -> EvalSplit:
    """``multi_hot`` > 0: multi-label records with that many labels, read as multi-hot vectors.
    The images are held when they fit in IN_MEMORY_BYTES, else read again by each pass."""

    def origin(record):
        keys = (record_format.LABEL, record_format.SOURCE, record_format.HEIGHT, record_format.WIDTH)
        return {key: record[key] for key in (*keys, record_format.MODE)}

    columns: dict[str, list] = {}
    dataset = records(examples_dir, split, origin=True, multi_hot=multi_hot).map(origin).batch(4096)
    for batch in prefetched(dataset).as_numpy_iterator():
        for key, values in batch.items():
            columns.setdefault(key, []).append(values)
    merged = {key: np.concatenate(values) for key, values in columns.items()}
    count = len(merged[record_format.LABEL])
    pixels: Pixels = FromRecords(examples_dir, split, spec, count, multi_hot)
    if count * int(np.prod(spec.input_shape)) <= IN_MEMORY_BYTES:
        pixels = InMemory(np.concatenate(list(pixels.batches(np.arange(count), 512))))
    return EvalSplit(
        pixels=pixels,
        labels=merged[record_format.LABEL].astype(np.int64),
        sources=[s.decode() for s in merged[record_format.SOURCE]],
        heights=merged[record_format.HEIGHT],
        widths=merged[record_format.WIDTH],
        modes=[m.decode() for m in merged[record_format.MODE]],
        image_size=(spec.height, spec.width),
        examples_dir=examples_dir,
        split=split,
        multi_hot=multi_hot,
    )
