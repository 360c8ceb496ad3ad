"""ResNet-9: the residual network of the published fast-CIFAR-10 training recipes.

Suited to real photos at 32-64 px; ``width`` scales every stage (64 gives the recipe's size).
"""

from __future__ import annotations

import keras
from keras import layers

from visionpipe.models.registry import register
from visionpipe.models.small_cnn import conv_bn_relu
from visionpipe.pipeline.config import ModelConfig


def _residual(x, filters: int, name: str):
    y = conv_bn_relu(x, filters, f"{name}_a")
    y = conv_bn_relu(y, filters, f"{name}_b")
    return layers.Add(name=f"{name}_add")([x, y])


@register("resnet9")
def build(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    w = config.width
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, w, "prep")
    x = conv_bn_relu(x, w * 2, "layer1")
    x = layers.MaxPooling2D(name="layer1_pool")(x)
    x = _residual(x, w * 2, "layer1_res")
    x = conv_bn_relu(x, w * 4, "layer2")
    x = layers.MaxPooling2D(name="layer2_pool")(x)
    x = conv_bn_relu(x, w * 8, "layer3")
    x = layers.MaxPooling2D(name="layer3_pool")(x)
    x = _residual(x, w * 8, "layer3_res")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet9")
