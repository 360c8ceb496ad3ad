"""The evaluated split in memory: fitted 8-bit images, labels and what each image was before
ingest (source path, original size, colour mode), read once for every part of evaluate.

Robustness, slices and the error gallery all index the same arrays, so they need random
access; holding the split as uint8 costs 3 KB per 32x32 image (150 KB at 224x224). The
encoded bytes are kept too, for the served model, which decodes them itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from visionpipe.data import record_format
from visionpipe.data.records import records
from visionpipe.models.preprocessing import PreprocessingSpec, load_pixels, to_float


@dataclasses.dataclass
class EvalSplit:
    images: np.ndarray  # uint8 [N, H, W, C], fitted to the model's input as every runtime fits them
    encoded: np.ndarray  # [N] the records' encoded bytes (object array)
    labels: np.ndarray  # int [N]; multi-label: uint8 multi-hot [N, labels]
    sources: list[str]
    heights: np.ndarray
    widths: np.ndarray
    modes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int = 256, indices: np.ndarray | None = None):
        """(float [0, 1] images as the model receives them, label ids) batches, in order."""
        indices = np.arange(len(self)) if indices is None else indices
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size]
            yield to_float(tf.constant(self.images[chosen])), self.labels[chosen]

    def encoded_batches(self, batch_size: int = 256):
        """(encoded image bytes, label ids) batches, in order: what a serving client sends."""
        for start in range(0, len(self), batch_size):
            chosen = slice(start, start + batch_size)
            yield tf.constant(list(self.encoded[chosen])), self.labels[chosen]


def load_split(examples_dir: Path, split: str, spec: PreprocessingSpec, multi_hot: int = 0) -> EvalSplit:
    """``multi_hot`` > 0: multi-label records with that many labels, read as multi-hot vectors."""

    def fitted(record):
        return {
            "pixels": load_pixels(record[record_format.ENCODED], spec),
            "encoded": record[record_format.ENCODED],
            "label": record[record_format.LABEL],
            "source": record[record_format.SOURCE],
            "height": record[record_format.HEIGHT],
            "width": record[record_format.WIDTH],
            "mode": record[record_format.MODE],
        }

    columns: dict[str, list] = {k: [] for k in ("pixels", "encoded", "label", "source", "height", "width", "mode")}
    dataset = (
        records(examples_dir, split, origin=True, multi_hot=multi_hot)
        .map(fitted, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(512)
    )
    for batch in dataset.as_numpy_iterator():
        for key, values in batch.items():
            columns[key].append(values)
    merged = {key: np.concatenate(values) for key, values in columns.items()}
    return EvalSplit(
        images=merged["pixels"],
        encoded=merged["encoded"],
        labels=merged["label"].astype(np.int64),
        sources=[s.decode() for s in merged["source"]],
        heights=merged["height"],
        widths=merged["width"],
        modes=[m.decode() for m in merged["mode"]],
    )
