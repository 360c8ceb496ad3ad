"""MobileNetV2 (randomly initialised; no weights are downloaded) for real photos on phones.

``width`` is read as a percentage of the standard width multiplier (alpha = width / 32, so
the default 32 gives alpha 1.0). Needs 3 channels and images of at least 32x32.
"""

from __future__ import annotations

import keras
from keras import layers

from visionpipe.models.registry import register
from visionpipe.pipeline.config import ModelConfig
from visionpipe.pipeline.errors import UserError


@register("mobilenet_v2")
def build(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    if input_shape[-1] != 3 or min(input_shape[:2]) < 32:
        raise UserError(
            f"mobilenet_v2 needs preprocessing.channels=3 and image_size >= 32; got input shape {input_shape}"
        )
    backbone = keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=config.width / 32, include_top=False, weights=None, pooling="avg"
    )
    inputs = keras.Input(input_shape, name="image")
    x = backbone(inputs)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")
