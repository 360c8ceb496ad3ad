"""airbench94 (Keller Jordan, 2024: 94% on CIFAR-10 in 3.3 A100-seconds), ported to Keras.

The network: a 2x2 convolution whose fixed kernel whitens the image patches (computed from
training images before training: ``Whitening.adapt_from_data``) and whose bias trains for
the first 3 epochs only, GELU, then three groups of (3x3 conv, 2x2 max-pool, BatchNorm, GELU,
3x3 conv, BatchNorm, GELU) of widths 64/256/256, a global max-pool, and a bias-free linear
layer whose logits are scaled by 1/9. BatchNorm has no scale, a learned shift, momentum 0.6
(PyTorch's 0.4) and epsilon 1e-12; convolutions start as partial identities (dirac).

The rest of the recipe is configuration (``configs/cifar_94.yaml``): SGD with Nesterov
momentum 0.85 and decoupled weight decay, a 64x learning rate on the BatchNorm shifts,
label smoothing 0.2, batch 1024, a one-cycle schedule (0.2 -> 1 over 23% of the steps, then
down to 0.07), Lookahead towards an EMA of the weights every 5 steps, flip + 2-pixel
translate augmentation and flip + translate test-time augmentation.
"""

from __future__ import annotations

from visionpipe.models.layers import custom_layers
from visionpipe.models.registry import default_keras, register


def _conv_group(x, filters: int, momentum: float, name: str, keras):
    layers, custom = keras.layers, custom_layers(keras)
    for i in (1, 2):
        x = custom.SmallMapConv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer=custom.PartialDirac(), name=f"{name}_conv{i}"
        )(x)
        if i == 1:
            x = layers.MaxPooling2D(name=f"{name}_pool")(x)
        x = custom.FusedBatchNormalization(momentum=momentum, epsilon=1e-12, scale=False, name=f"{name}_norm{i}")(x)
        x = custom.Gelu(name=f"{name}_gelu{i}")(x)
    return x


@register("airbench")
def build(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    widths: tuple[int, int, int] = (64, 256, 256),
    batchnorm_momentum: float = 0.6,
    scaling_factor: float = 1 / 9,
    whiten_kernel_size: int = 2,
    whiten_bias_epochs: int = 3,
    keras=None,
):
    keras = default_keras(keras)
    layers, custom = keras.layers, custom_layers(keras)
    channels = input_shape[-1]
    inputs = keras.Input(input_shape, name="image")
    whiten_width = 2 * channels * whiten_kernel_size**2
    x = custom.Whitening(whiten_width, whiten_kernel_size, bias_epochs=whiten_bias_epochs, name="whiten")(inputs)
    x = custom.Gelu(name="whiten_gelu")(x)
    for i, width in enumerate(widths):
        x = _conv_group(x, width, batchnorm_momentum, f"group{i + 1}", keras)
    x = layers.GlobalMaxPooling2D(name="pool")(x)  # the 3x3 max-pool of the original at 32x32
    x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
    x = custom.Scale(scaling_factor, name="scale")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="airbench")
