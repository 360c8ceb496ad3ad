"""Augmentation policy from config, built from Keras preprocessing layers (training only)."""
from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf


def build_augmenter(names: tuple[str, ...], magnitude: float, seed: int) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """A function on image batches, or None when the policy is empty."""
    factories = {
        "flip_horizontal": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "translate": lambda: keras.layers.RandomTranslation(magnitude, magnitude, fill_mode="reflect", seed=seed),
        "rotate": lambda: keras.layers.RandomRotation(magnitude, fill_mode="reflect", seed=seed),
        "zoom": lambda: keras.layers.RandomZoom(magnitude, fill_mode="reflect", seed=seed),
        "contrast": lambda: keras.layers.RandomContrast(magnitude, value_range=(0, 1), seed=seed),
    }
    if not names:
        return None
    pipeline = keras.Sequential([factories[name]() for name in names], name="augment")

    def augment(images: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(pipeline(images, training=True), 0.0, 1.0)
    return augment
