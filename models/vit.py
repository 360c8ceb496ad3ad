"""A small Vision Transformer (Dosovitskiy et al., 2021) for comparison with the CNNs.

Non-overlapping patches are embedded by a strided convolution, a learned position embedding
is added, and pre-norm transformer blocks (multi-head self-attention, then a GELU MLP, each
with a residual) mix them; the patch tokens are averaged for the classifier. The defaults
(patch 4, 192 wide, 6 blocks of 3 heads: about 1.8M parameters) suit 32x32 images; ViTs need
more data or stronger augmentation than CNNs to match them on small datasets.
"""

from __future__ import annotations

from visionpipe.models.layers import custom_layers
from visionpipe.models.registry import default_keras, register


@register("vit")
def build(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    patch_size: int = 4,
    dim: int = 192,
    depth: int = 6,
    heads: int = 3,
    mlp_ratio: float = 2.0,
    dropout: float = 0.1,
    keras=None,
):
    keras = default_keras(keras)
    layers = keras.layers
    height, width = input_shape[0] // patch_size, input_shape[1] // patch_size
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embed")(inputs)
    x = layers.Reshape((height * width, dim), name="tokens")(x)
    x = custom_layers(keras).PositionEmbedding(name="position")(x)
    x = layers.Dropout(dropout, name="embed_dropout")(x)
    for i in range(depth):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        y = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name=f"block{i}_attention")(y, y)
        x = layers.Add(name=f"block{i}_add1")([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        y = layers.Dense(int(dim * mlp_ratio), activation="gelu", name=f"block{i}_mlp1")(y)
        y = layers.Dropout(dropout, name=f"block{i}_dropout")(y)
        y = layers.Dense(dim, name=f"block{i}_mlp2")(y)
        x = layers.Add(name=f"block{i}_add2")([x, y])
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    # Softmax in float32 even under a mixed-precision policy, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vit")
