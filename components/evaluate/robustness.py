"""Accuracy when images get worse: common corruptions at three severities, and FGSM.

Each corruption maps a batch of float images in [0, 1] to the same images degraded, then
rounded back to 8 bits like any frame a camera or an app would send. Severities go from
mild to strong; the gate's ``max_corruption_drop`` reads the strongest. FGSM (fast gradient
sign method) moves every pixel by epsilon in the direction that raises the loss the most:
a worst case for tiny perturbations, where corruptions are the typical case.

Severities are relative to the image size, so a figure means the same for 28 px digits and
224 px photos: blur's sigma is ImageNet-C's at 224 px (its severities 2, 4 and 5: 2, 4 and 6
px) scaled to the image's shorter side, and downscale divides the size by fixed factors. A
sigma in pixels would not: 2 px takes 28 px digits to chance and barely touches 224 px
photos. Noise, brightness and contrast act on each pixel's value, the same at any size;
JPEG works in 8x8-pixel blocks at any size, so it is harsher on small images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from scipy import special

from visionpipe.components.evaluate.config import CORRUPTIONS


def _gaussian_noise(images, sigma, seed):
    return images + tf.random.stateless_normal(tf.shape(images), seed=[seed, 0], stddev=sigma)


REFERENCE_SIDE = 224  # ImageNet-C's image side, where the pixel sizes of severities are defined


def _scaled_sigma(level: float, height: int, width: int) -> float:
    """A blur sigma given at REFERENCE_SIDE px, in pixels of an image of this size."""
    return level * min(height, width) / REFERENCE_SIDE


def _blur(images, level, seed):
    return gaussian_blur(images, _scaled_sigma(level, images.shape[1], images.shape[2]))


def gaussian_blur(images, sigma: float):
    """``images`` blurred by a Gaussian of ``sigma`` pixels (borders mirrored). The kernel is
    Lindeberg's discrete Gaussian, whose variance is sigma^2 even below a pixel, where samples
    of the continuous one blur far less than sigma says (0.3 px would barely change a pixel)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    kernel = special.ive(np.arange(-radius, radius + 1), sigma**2).astype(np.float32)
    kernel /= kernel.sum()
    channels = images.shape[-1]
    rows = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, channels, 1)))
    columns = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, channels, 1)))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID")


def _brightness(images, delta, seed):
    return images + delta


def _contrast(images, factor, seed):
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * factor + mean


def _jpeg(images, quality, seed):
    # adjust_jpeg_quality encodes and decodes 1 or 3 channels; a grayscale batch stays grayscale.
    return tf.map_fn(lambda image: tf.image.adjust_jpeg_quality(image, quality), images)


def _small_size(factor: float, height: int, width: int) -> list[int]:
    return [max(1, round(height / factor)), max(1, round(width / factor))]


def _downscale(images, factor, seed):
    height, width = images.shape[1], images.shape[2]
    small = tf.image.resize(images, _small_size(factor, height, width), antialias=True)
    return tf.image.resize(small, [height, width], method="bilinear")


class Corruption(NamedTuple):
    apply: Callable  # (images, level, seed) -> images
    levels: tuple  # the three severities
    parameter: str  # what a level means
    # (level, height, width) -> what it is at this image size, for corruptions scaled to it
    at_size: Callable[[float, int, int], str] | None = None


CORRUPTION_FUNCTIONS: dict[str, Corruption] = {
    "gaussian_noise": Corruption(_gaussian_noise, (0.04, 0.08, 0.16), "noise standard deviation"),
    "blur": Corruption(
        _blur,
        (2.0, 4.0, 6.0),
        f"Gaussian blur sigma in pixels of a {REFERENCE_SIDE} px image (ImageNet-C), scaled to the image size",
        lambda level, h, w: f"{_scaled_sigma(level, h, w):.2g} px",
    ),
    "brightness": Corruption(_brightness, (0.1, 0.2, 0.3), "added to every pixel"),
    "contrast": Corruption(_contrast, (0.7, 0.5, 0.3), "contrast factor"),
    "jpeg": Corruption(_jpeg, (50, 25, 10), "JPEG quality (8x8-pixel blocks at any size)"),
    "downscale": Corruption(
        _downscale,
        (2, 3, 4),
        "image size divided by, then scaled back up",
        lambda level, h, w: "{}x{} px".format(*_small_size(level, h, w)),
    ),
}
assert tuple(CORRUPTION_FUNCTIONS) == CORRUPTIONS, "the config's corruption list and this module's must agree"


def corrupt(images: tf.Tensor, name: str, severity: int, seed: int) -> tf.Tensor:
    """``images`` (float [0, 1]) under corruption ``name`` at ``severity`` (0, 1 or 2)."""
    corruption = CORRUPTION_FUNCTIONS[name]
    degraded = corruption.apply(images, corruption.levels[severity], seed)
    return tf.round(tf.clip_by_value(degraded, 0.0, 1.0) * 255.0) / 255.0


def fgsm(model, images: tf.Tensor, labels: np.ndarray, epsilon: float) -> tf.Tensor:
    """Images moved by ``epsilon`` along the sign of the loss gradient (untargeted FGSM)."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        probabilities = model(images, training=False)
        loss = tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    gradient = tape.gradient(loss, images)
    return tf.clip_by_value(images + epsilon * tf.sign(gradient), 0.0, 1.0)


def robustness(
    model,
    split,
    indices: np.ndarray,
    corruptions: tuple[str, ...],
    epsilons: tuple[float, ...],
    seed: int,
    progress=None,
) -> dict:
    """Accuracy of ``model`` on the images ``indices`` of ``split`` (an ``EvalSplit``): clean,
    under each corruption at each severity, and under FGSM at each epsilon."""
    # Compiled once per shape: eager calls would dominate the run time on small images.
    predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=1), reduce_retracing=True)
    attack = tf.function(lambda x, y, e: fgsm(model, x, y, e), reduce_retracing=True)
    degrade = tf.function(corrupt, reduce_retracing=True)
    passes: dict[tuple[str, int], tuple[str, int] | None] = {("clean", 0): None}
    passes.update({(name, s): (name, s) for name in corruptions for s in range(3)})
    correct: dict[tuple, list] = {key: [] for key in passes}
    correct.update({("fgsm", e): [] for e in epsilons})
    for batch_number, (images, batch_labels) in enumerate(split.batches(256, indices)):
        for key, corruption in passes.items():
            shown = images if corruption is None else degrade(images, *corruption, seed=seed + batch_number)
            correct[key].append(predict(shown).numpy() == batch_labels)
        for epsilon in epsilons:
            attacked = attack(images, tf.constant(batch_labels), tf.constant(epsilon, tf.float32))
            correct[("fgsm", epsilon)].append(predict(attacked).numpy() == batch_labels)
        if progress is not None:
            progress.advance(len(images))
    accuracy = {key: float(np.concatenate(hits).mean()) for key, hits in correct.items()}
    clean = accuracy[("clean", 0)]
    height, width = split.image_size
    return {
        "images": int(len(indices)),
        "image_size": [height, width],
        "clean_accuracy": clean,
        "corruptions": {
            name: {
                "parameter": CORRUPTION_FUNCTIONS[name].parameter,
                "severities": [_severity(name, s, accuracy[(name, s)], height, width) for s in range(3)],
                "drop_at_strongest": clean - accuracy[(name, 2)],
            }
            for name in corruptions
        },
        "fgsm": [{"epsilon": e, "accuracy": accuracy[("fgsm", e)]} for e in epsilons],
    }


def _severity(name: str, severity: int, accuracy: float, height: int, width: int) -> dict:
    corruption = CORRUPTION_FUNCTIONS[name]
    level = corruption.levels[severity]
    entry = {"level": level, "accuracy": accuracy}
    if corruption.at_size is not None:
        entry["at_this_size"] = corruption.at_size(level, height, width)
    return entry
