"""What the push tests build for themselves: a tiny exported SavedModel (a sound one and one
whose probabilities do not sum to 1), an Examples artifact of real JPEGs, and a PushConfig."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

from visionpipe.components.push.config import PushConfig
from visionpipe.pipeline.artifacts import Examples

CLASSES = ["blue", "green", "red"]


def jpeg(seed: int, size: int = 20) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def export_tiny(path: Path, softmax: bool = True) -> Path:
    """A 3-class model on 16x16 RGB exported with the project's serving signature; without
    ``softmax`` its "probabilities" are raw scores. Returns the SavedModel folder."""
    import keras

    from visionpipe.components.export.saved_model import export_saved_model
    from visionpipe.models.preprocessing import PreprocessingSpec

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    outputs = keras.layers.Dense(3, activation="softmax" if softmax else None)(x)
    spec = PreprocessingSpec(16, 16, 3, "stretch", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    export_saved_model(keras.Model(inputs, outputs), spec, CLASSES, path)
    return path


def make_examples(path: Path, val: int = 6, test: int = 4) -> Examples:
    """An Examples artifact whose val and test splits hold real JPEGs (seeds 100+ and 200+)."""
    import tensorflow as tf

    from visionpipe.data import record_format

    for split, count, first in (("val", val, 100), ("test", test, 200)):
        if not count:
            continue
        (path / split).mkdir(parents=True)
        with tf.io.TFRecordWriter(str(path / split / "data-00000-of-00001.tfrecord")) as writer:
            for i in range(count):
                record = record_format.Record(
                    jpeg(first + i), i % 3, CLASSES[i % 3], f"{split}/{i}.jpg", "0" * 64, "JPEG", "RGB", 20, 20, 3,
                    False,
                )  # fmt: skip
                writer.write(record_format.serialize(record))
    properties = {"classes": CLASSES, "train_images": 0, "val_images": val, "test_images": test}
    return Examples(uri=str(path), properties=properties)


def push_config(**changes) -> PushConfig:
    """Defaults, with a short timeout and few warmup records so the tests stay fast."""
    return dataclasses.replace(PushConfig(warmup_requests=4, infra_timeout_seconds=120), **changes)
