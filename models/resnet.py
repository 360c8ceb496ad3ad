"""ResNet-9: the residual network of the DAWNBench fast-CIFAR-10 recipes (Page, 2018).

Suited to images of 32-64 px; ``width`` scales every stage (64 is the published size, about
6.5M parameters; 16 trains about 16x faster).
"""

from __future__ import annotations

from visionpipe.models.registry import default_keras, register
from visionpipe.models.small_cnn import conv_bn_relu


def _residual(x, filters: int, name: str, keras):
    y = conv_bn_relu(x, filters, f"{name}_a", keras)
    y = conv_bn_relu(y, filters, f"{name}_b", keras)
    return keras.layers.Add(name=f"{name}_add")([x, y])


@register("resnet9")
def build(input_shape: tuple[int, int, int], num_classes: int, *, width: int = 32, dropout: float = 0.25, keras=None):
    keras = default_keras(keras)
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, width, "prep", keras)
    x = conv_bn_relu(x, width * 2, "layer1", keras)
    x = layers.MaxPooling2D(name="layer1_pool")(x)
    x = _residual(x, width * 2, "layer1_res", keras)
    x = conv_bn_relu(x, width * 4, "layer2", keras)
    x = layers.MaxPooling2D(name="layer2_pool")(x)
    x = conv_bn_relu(x, width * 8, "layer3", keras)
    x = layers.MaxPooling2D(name="layer3_pool")(x)
    x = _residual(x, width * 8, "layer3_res", keras)
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    # Softmax in float32 even under a mixed-precision policy, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet9")
