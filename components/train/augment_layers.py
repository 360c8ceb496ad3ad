"""The augmentation layers Keras 3 lacks or runs wastefully, for the policies in ``augment.py``.

* ``RandomApply`` applies a layer to each image (and its label, for MixUp/CutMix) with a
  probability; Keras layers otherwise apply to every image.
* ``RandomResizedCrop`` is the Inception-style crop (random area and aspect ratio, resized
  back), vectorised over the batch with one ``tf.image.crop_and_resize``.
* ``FastRandAugment`` is ``keras.layers.RandAugment`` computing only the operations it picked:
  the Keras layer runs all 11 operations ``num_ops`` times and keeps one result each time,
  which made it slower than training (about 1.2k images/s on 2 cores, see BENCHMARKS.md).
* ``AlternatingFlip`` is airbench's flip: each image mirrored on every other pass over the
  data rather than at random, so every image is seen both ways in any two passes.

All take and return float images in [0, 1]. They are plain Keras layers, so the same
objects run in tf.data (CPU) or inside the model on an accelerator; ``AlternatingFlip``
needs each image's pass number, which only the tf.data stream knows.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class RandomApply(keras.layers.Layer):
    """Applies ``layer`` to each image of a batch with probability ``probability``."""

    def __init__(self, layer: keras.layers.Layer, probability: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.probability = probability
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            "probability": self.probability,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "layer": keras.saving.deserialize_keras_object(config["layer"])})

    def call(self, data, training=True):
        if not training:
            return data
        changed = self.layer(dict(data) if isinstance(data, dict) else data, training=True)
        images = data["images"] if isinstance(data, dict) else data
        chosen = keras.random.uniform(tf.shape(images)[:1], seed=self.generator) < self.probability

        def pick(new, old):
            mask = tf.reshape(chosen, [-1] + [1] * (len(old.shape) - 1))
            return tf.where(mask, tf.cast(new, old.dtype), old)

        if isinstance(data, dict):
            return {key: pick(changed[key], value) for key, value in data.items()}
        return pick(changed, data)


class RandomResizedCrop(keras.layers.Layer):
    """Crops a random box of ``min_area``..1 of the image, aspect ratio 3/4..4/3, resized back."""

    def __init__(self, min_area: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.min_area = min_area
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {**super().get_config(), "min_area": self.min_area, "seed": self.seed}

    def call(self, images, training=True):
        if not training:
            return images
        n = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        area = keras.random.uniform([n], self.min_area, 1.0, seed=self.generator)
        log_ratio = keras.random.uniform([n], math.log(3 / 4), math.log(4 / 3), seed=self.generator)
        # Limiting the aspect ratio to area..1/area keeps both sides within the image, so
        # every box has exactly the drawn area (and area 1 is the whole image).
        ratio = tf.exp(tf.clip_by_value(log_ratio, tf.math.log(area), -tf.math.log(area)))
        box_h, box_w = tf.sqrt(area / ratio), tf.sqrt(area * ratio)
        top = keras.random.uniform([n], seed=self.generator) * (1.0 - box_h)
        left = keras.random.uniform([n], seed=self.generator) * (1.0 - box_w)
        boxes = tf.stack([top, left, top + box_h, left + box_w], axis=1)
        return tf.image.crop_and_resize(images, boxes, tf.range(n), [height, width])


class FastRandAugment(keras.layers.RandAugment):
    """RandAugment that runs only the ``num_ops`` operations it drew for the batch.

    Like the Keras layer, the operations are drawn once per batch and their strengths per
    image; ``tf.switch_case`` then executes just the drawn branch instead of all eleven.
    """

    def transform_images(self, images, transformation, training=True):
        images = tf.cast(images, self.compute_dtype)
        if not training:
            return images
        transforms, shape = transformation["transforms"], images.shape
        for i in range(self.num_ops):
            branches = [self._branch(name, transforms[name], images) for name in self._AUGMENT_LAYERS]
            images = tf.switch_case(transformation["layer_idxes"][i], branches)
            images.set_shape(shape)  # every operation keeps the batch's shape
        return images

    def _branch(self, name: str, transform, images):
        layer = getattr(self, name)
        return lambda: tf.cast(layer.transform_images(images, transform), self.compute_dtype)


class AlternatingFlip(keras.layers.Layer):
    """Mirrors each image on alternate passes over the train split (airbench's flip).

    Takes ``{"images": float batch, "passes": each image's pass number (int64)}``. Whether an
    image starts mirrored is a hash of its pixels and the seed, so it needs no index and stays
    the same on every pass of a cached split; from then on it flips on every other pass.
    Random flips show half of the images only one way over any two passes; this shows every
    image both ways.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def call(self, data, training=True):
        images = data["images"]
        if not training:
            return images
        count = tf.shape(images)[0]
        pixel_bytes = tf.reshape(tf.bitcast(tf.cast(images, tf.float32), tf.uint8), [count, -1])
        salt = tf.tile(tf.bitcast(tf.constant(self.seed, tf.int64), tf.uint8)[None], [count, 1])
        flat = tf.concat([salt, pixel_bytes], axis=1)
        starts_mirrored = tf.cast(tf.fingerprint(flat)[:, 0] % 2, tf.int64)
        mirrored = (starts_mirrored + tf.cast(data["passes"], tf.int64)) % 2 == 1
        return tf.where(mirrored[:, None, None, None], tf.reverse(images, axis=[2]), images)
