"""The one image preprocessing path: encoded bytes -> decoded -> resized -> scaled to [0, 1].

Training, evaluation, TFLite calibration and the exported serving signature all call
``load_image``, so the same bytes give the same tensor everywhere (no train/serve skew).
Per-channel normalisation with the train split's mean/std is the model's first layer
(``normalization_layer``), so it travels inside every exported model too.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class PreprocessingSpec:
    height: int
    width: int
    channels: int
    resize_policy: str  # stretch | pad | crop
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "PreprocessingSpec":
        data = json.loads(path.read_text())
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})


def decode(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """JPEG or PNG bytes (8- or 16-bit) -> float32 [H, W, channels] in [0, 1]."""
    image = tf.io.decode_image(image_bytes, channels=channels, dtype=tf.float32, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def resize(image: tf.Tensor, height: int, width: int, policy: str) -> tf.Tensor:
    """Fits an image of any size to [height, width].

    stretch: plain resize, ignores aspect ratio (fine when all inputs share one shape).
    pad:     keeps aspect ratio and pads with black (nothing of the object is cut off).
    crop:    keeps aspect ratio, scales the short side to fit, then centre-crops.
    """
    if policy == "stretch":
        resized = tf.image.resize(image, [height, width], antialias=True)
    elif policy == "pad":
        resized = tf.image.resize(image, _scaled_size(image, height, width, tf.reduce_min), antialias=True)
        resized = tf.image.resize_with_crop_or_pad(resized, height, width)  # pads, centred
    elif policy == "crop":
        resized = tf.image.resize(image, _scaled_size(image, height, width, tf.reduce_max), antialias=True)
        resized = tf.image.resize_with_crop_or_pad(resized, height, width)  # crops, centred
    else:
        raise ValueError(f"unknown resize policy {policy!r}; use stretch, pad or crop")
    return tf.clip_by_value(resized, 0.0, 1.0)


def _scaled_size(image: tf.Tensor, height: int, width: int, pick) -> tf.Tensor:
    """Aspect-preserving size: ``pick=reduce_min`` fits inside the target, ``reduce_max`` covers it.

    Integer rounding is explicit (tf.image.resize_with_pad rounds differently in graph and
    eager mode, which would make serving differ from training by a pixel column).
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    target = tf.constant([height, width], tf.float64)
    scaled = tf.round(shape * pick(target / shape))
    return tf.cast(tf.clip_by_value(scaled, 1.0, tf.float64.max), tf.int32)


def load_image(image_bytes: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    return resize(decode(image_bytes, spec.channels), spec.height, spec.width, spec.resize_policy)


def normalization_layer(spec: PreprocessingSpec) -> keras.layers.Layer:
    variance = [max(s, 1e-3) ** 2 for s in spec.std]  # a constant channel must not divide by zero
    return keras.layers.Normalization(mean=list(spec.mean), variance=variance, name="normalize")
