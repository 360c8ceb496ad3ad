"""The one image preprocessing path: encoded bytes -> decoded -> fitted to the model's size.

``load_pixels`` gives the fitted image as 8-bit pixels and ``to_float`` scales pixels to
[0, 1]. Training, evaluation and TFLite calibration read records through
``components.common.dataset``, which decodes with ``load_pixels`` (training caches and
shuffles those compact pixels) and scales whole batches with ``to_float``; the exported
serving signature and ``visionpipe predict`` call ``load_image`` (the two composed) per
image. The scaling is element-wise, so the same bytes give the same tensor everywhere (no
train/serve skew). A resized image is rounded back to 8 bits on every path, like a camera
frame an app would send. Per-channel normalisation with the train split's mean/std is the
model's first layer (``normalization_layer``), so it travels inside every exported model too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import tensorflow as tf

RESIZE_POLICIES = ("stretch", "pad", "crop", "center_crop")


@dataclasses.dataclass(frozen=True)
class PreprocessingSpec:
    height: int
    width: int
    channels: int
    resize_policy: str  # one of RESIZE_POLICIES
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_fraction: float = 1.0  # center_crop keeps this central fraction of the short side

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> PreprocessingSpec:
        data = json.loads(path.read_text())
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})


def decode(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """JPEG, PNG, BMP or GIF bytes -> uint8 [H, W, channels] (16-bit PNGs are scaled to 8 bits)."""
    image = tf.io.decode_image(image_bytes, channels=channels, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def fit(image: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    """Fits uint8 pixels of any size to [spec.height, spec.width] by the spec's resize policy.

    stretch:     plain resize, ignores the aspect ratio. For inputs that already share one
                 shape (CIFAR, MNIST, a fixed camera) or when the object fills the frame.
    pad:         keeps the aspect ratio and pads with black; nothing of the object is cut off.
                 For varied shapes where the object may touch the border (documents, products).
    crop:        keeps the aspect ratio, scales the short side to fit, then centre-crops the
                 long side. For photos whose subject is centred; no padding artefacts.
    center_crop: like crop, but keeps only the central ``crop_fraction`` of the short side
                 (0.875 is the usual ImageNet evaluation crop); trims cluttered borders.

    An image that already has the target size is passed through untouched by every policy.
    """
    if spec.resize_policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {spec.resize_policy!r}; use one of {', '.join(RESIZE_POLICIES)}")
    target = tf.constant([spec.height, spec.width])
    already_fits = tf.reduce_all(tf.equal(tf.shape(image)[:2], target))
    fitted = tf.cond(already_fits, lambda: image, lambda: _resize(image, spec))
    fitted.set_shape(spec.input_shape)
    return fitted


def _resize(image: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    image = tf.cast(image, tf.float32)
    height, width = spec.height, spec.width
    if spec.resize_policy == "stretch":
        resized = tf.image.resize(image, [height, width], antialias=True)
    elif spec.resize_policy == "pad":
        resized = tf.image.resize(image, _scaled_size(image, height, width, tf.reduce_min), antialias=True)
        resized = tf.image.resize_with_crop_or_pad(resized, height, width)  # pads, centred
    else:  # crop, center_crop: cover a target enlarged by 1 / fraction, then crop the centre
        fraction = spec.crop_fraction if spec.resize_policy == "center_crop" else 1.0
        cover = _scaled_size(image, height / fraction, width / fraction, tf.reduce_max)
        resized = tf.image.resize_with_crop_or_pad(tf.image.resize(image, cover, antialias=True), height, width)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _scaled_size(image: tf.Tensor, height: float, width: float, pick) -> tf.Tensor:
    """Aspect-preserving size: ``pick=reduce_min`` fits inside the target, ``reduce_max`` covers it.

    Integer rounding is explicit (tf.image.resize_with_pad rounds differently in graph and
    eager mode, which would make serving differ from training by a pixel column).
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    target = tf.constant([height, width], tf.float64)
    scaled = tf.round(shape * pick(target / shape))
    return tf.cast(tf.clip_by_value(scaled, 1.0, tf.float64.max), tf.int32)


def load_pixels(image_bytes: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    """Encoded bytes -> uint8 [height, width, channels]: what the input pipeline caches."""
    return fit(decode(image_bytes, spec.channels), spec)


def to_float(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 pixels (one image or a batch) -> float32 in [0, 1]."""
    return tf.image.convert_image_dtype(pixels, tf.float32)


def load_image(image_bytes: tf.Tensor, spec: PreprocessingSpec) -> tf.Tensor:
    """Encoded bytes -> float32 [height, width, channels] in [0, 1]: what the model receives."""
    return to_float(load_pixels(image_bytes, spec))


def normalization_layer(spec: PreprocessingSpec, keras_module=keras):
    """Per-channel (x - mean) / std with the train split's statistics, built with the given
    Keras module (Keras 3, or tf_keras for a twin)."""
    std = [max(s, 1e-3) for s in spec.std]  # a constant channel must not divide by zero
    # x / std - mean / std, as a Rescaling: its constants live in the graph, where every
    # exporter finds them (Normalization's are captured tensors, which tf2onnx turns into
    # required inputs of the ONNX file).
    return keras_module.layers.Rescaling(
        scale=[1.0 / s for s in std], offset=[-m / s for m, s in zip(spec.mean, std, strict=True)], name="normalize"
    )
