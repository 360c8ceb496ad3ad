"""Augmentation policies from config (``train.augment``), built from Keras 3 preprocessing layers.

A policy is a list of ops, each with a probability and a magnitude whose meaning is in
``OPS`` (and the README table). Image ops run on float batches in [0, 1] either in tf.data on
the CPU (``placement: data``) or as the first layers of the training model on the
accelerator (``placement: model``). MixUp and CutMix change labels as well, so they always
run in tf.data, after the image ops. ``flip_alternating`` needs each image's pass over the
data, which only the tf.data stream knows: it runs there, first. Augmentation only ever
touches training batches; the layers are not part of the saved model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf

from visionpipe.components.train.augment_layers import (
    AlternatingFlip,
    FastRandAugment,
    RandomApply,
    RandomResizedCrop,
)
from visionpipe.components.train.config import AugmentConfig, AugmentOpConfig
from visionpipe.pipeline.errors import UserError

VALUE_RANGE = (0.0, 1.0)


class Op(NamedTuple):
    build: Callable[[float, AugmentOpConfig, int], keras.layers.Layer]  # (magnitude, op config, seed)
    default_magnitude: float | None  # None: the op takes no magnitude
    meaning: str  # what magnitude means, for errors and the README
    mixes_labels: bool = False
    own_probability: bool = False  # the Keras layer takes the probability itself
    needs_passes: bool = False  # the layer takes {"images", "passes"}: each image's pass over the data


def _color_jitter(m: float, _, seed: int) -> keras.layers.Layer:
    return keras.layers.RandomColorJitter(
        value_range=VALUE_RANGE,
        brightness_factor=m,
        contrast_factor=m,
        saturation_factor=(max(0.0, 0.5 - m), min(1.0, 0.5 + m)),
        hue_factor=m / 4,
        seed=seed,
    )


OPS: dict[str, Op] = {
    "random_resized_crop": Op(
        lambda m, _, s: RandomResizedCrop(1.0 - m, seed=s),
        0.65,
        "largest share of the area cut away (crops keep 1 - magnitude .. 100%)",
    ),
    "flip_horizontal": Op(
        lambda m, _, s: keras.layers.RandomFlip("horizontal", seed=s),
        None,
        "no magnitude; flips half of the images it is applied to",
    ),
    "flip_vertical": Op(
        lambda m, _, s: keras.layers.RandomFlip("vertical", seed=s),
        None,
        "no magnitude; flips half of the images it is applied to",
    ),
    "flip_alternating": Op(
        lambda m, _, s: AlternatingFlip(seed=s),
        None,
        "no magnitude; each image mirrored on every other pass over the train split (airbench), "
        "so any two passes show it both ways",
        needs_passes=True,
    ),
    # Nearest-neighbour sampling makes this the classic pad-and-crop: whole-pixel shifts,
    # borders reflected, no blur, and about 1.3x faster than bilinear on CIFAR batches.
    "translate": Op(
        lambda m, _, s: keras.layers.RandomTranslation(m, m, fill_mode="reflect", interpolation="nearest", seed=s),
        0.125,
        "largest shift as a fraction of the size",
    ),
    "rotate": Op(
        lambda m, _, s: keras.layers.RandomRotation(m / 360, fill_mode="reflect", seed=s),
        15.0,
        "largest rotation in degrees",
    ),
    "zoom": Op(
        lambda m, _, s: keras.layers.RandomZoom(m, fill_mode="reflect", seed=s),
        0.1,
        "largest zoom in or out as a fraction of the size",
    ),
    "brightness": Op(
        lambda m, _, s: keras.layers.RandomBrightness(m, value_range=VALUE_RANGE, seed=s),
        0.2,
        "largest brightness change as a fraction of the value range",
    ),
    "contrast": Op(
        lambda m, _, s: keras.layers.RandomContrast(m, value_range=VALUE_RANGE, seed=s),
        0.2,
        "largest contrast change as a fraction",
    ),
    "color_jitter": Op(_color_jitter, 0.2, "brightness, contrast and saturation change; hue change is a quarter"),
    "rand_augment": Op(
        lambda m, c, s: FastRandAugment(value_range=VALUE_RANGE, num_ops=c.num_ops, factor=m, seed=s),
        0.5,
        "strength of each operation, 0..1 (num_ops operations per batch)",
    ),
    "random_erasing": Op(
        lambda m, c, s: keras.layers.RandomErasing(
            factor=(c.probability, c.probability), scale=(0.02, m), value_range=VALUE_RANGE, seed=s
        ),
        0.33,
        "largest erased share of the area",
        own_probability=True,
    ),
    "mixup": Op(
        lambda m, _, s: keras.layers.MixUp(alpha=m, seed=s),
        0.2,
        "alpha of the Beta distribution of mixing weights",
        mixes_labels=True,
    ),
    "cutmix": Op(
        lambda m, _, s: keras.layers.CutMix(factor=m, seed=s),
        1.0,
        "alpha of the Beta distribution of the pasted area",
        mixes_labels=True,
    ),
}


@dataclasses.dataclass
class AugmentPolicy:
    image_layers: list[keras.layers.Layer]
    label_mixers: list[keras.layers.Layer]
    placement: str
    alternating_flip: keras.layers.Layer | None = None  # runs first, in tf.data: it needs passes

    @property
    def needs_passes(self) -> bool:
        """Whether ``on_batch`` needs each image's pass over the data (an endless train stream)."""
        return self.alternating_flip is not None

    @property
    def in_model(self) -> keras.Sequential | None:
        """The image ops to run as the model's first layers, or None."""
        if self.placement != "model" or not self.image_layers:
            return None
        return keras.Sequential(self.image_layers, name="augment")

    def on_batch(
        self, images: tf.Tensor, labels: tf.Tensor, passes: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The tf.data part: float images in [0, 1] and one-hot labels of one training batch;
        ``passes``, each image's pass over the train split, when the policy ``needs_passes``."""
        if self.alternating_flip is not None:
            if passes is None:
                raise ValueError("flip_alternating needs each image's pass number: call on_batch with passes")
            images = self.alternating_flip({"images": images, "passes": passes}, training=True)
        if self.placement == "data":
            for layer in self.image_layers:
                images = layer(images, training=True)
        for mixer in self.label_mixers:
            mixed = mixer({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], tf.cast(mixed["labels"], labels.dtype)
        return tf.clip_by_value(images, *VALUE_RANGE), labels


def build_policy(config: AugmentConfig, seed: int) -> AugmentPolicy | None:
    """The policy of ``train.augment``, or None when it is empty. Bad entries raise UserError."""
    if not config.policy:
        return None
    image_layers: list[keras.Layer] = []
    label_mixers: list[keras.Layer] = []
    alternating_flip = None
    for index, step in enumerate(config.policy):
        where = f"train.augment.policy[{index}] ({step.op})"
        op = OPS[step.op]
        if not 0.0 <= step.probability <= 1.0:
            raise UserError(f"{where}: probability must be between 0 and 1; got {step.probability}")
        if op.default_magnitude is None and step.magnitude is not None:
            raise UserError(f"{where} takes no magnitude ({op.meaning}); remove magnitude: {step.magnitude}")
        magnitude = op.default_magnitude if step.magnitude is None else step.magnitude
        if magnitude is not None and magnitude < 0:
            raise UserError(f"{where}: magnitude ({op.meaning}) must not be negative; got {magnitude}")
        # Both ops below have a default magnitude, so theirs is never None.
        if step.op == "random_resized_crop" and magnitude is not None and magnitude >= 1:
            raise UserError(f"{where}: magnitude ({op.meaning}) must be below 1; got {magnitude}")
        if step.op == "rand_augment" and magnitude is not None and (magnitude > 1 or step.num_ops < 1):
            raise UserError(f"{where}: needs magnitude in 0..1 and num_ops >= 1; got {magnitude}, {step.num_ops}")
        if label_mixers and not op.mixes_labels:
            raise UserError(
                f"{where}: image ops must come before mixup/cutmix in the policy, "
                "because those also mix the labels and always run last, in tf.data"
            )
        if op.needs_passes and (index or step.probability < 1.0):
            raise UserError(
                f"{where}: must be the policy's first op, with probability 1: it picks each image's flip "
                "from its unaugmented pixels and then flips it on every other pass"
            )
        layer = op.build(magnitude or 0.0, step, seed + index)
        if op.needs_passes:
            alternating_flip = layer
            continue
        if step.probability < 1.0 and not op.own_probability:
            layer = RandomApply(layer, step.probability, seed=seed + 1000 + index)
        (label_mixers if op.mixes_labels else image_layers).append(layer)
    return AugmentPolicy(image_layers, label_mixers, config.placement, alternating_flip)
