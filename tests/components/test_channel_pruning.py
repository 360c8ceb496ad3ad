"""Channel pruning (components/export/channel_pruning.py): which convolutions can lose filters,
and a narrower copy that computes what the original computes from the channels it keeps."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionpipe.components.export.channel_pruning import SIMD_CHANNELS, pruned
from visionpipe.models.registry import create_model


def _residual_net() -> keras.Model:
    """conv_a -> BN -> ReLU -> depthwise -> BN -> ReLU -> conv_b -> BN, added to conv_s's
    shortcut: conv_a's width is free, conv_b's and conv_s's are tied by the add."""
    layers = keras.layers
    image = keras.Input((12, 12, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_a")(image)
    x = layers.ReLU()(layers.BatchNormalization(name="bn_a")(x))
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = layers.ReLU()(layers.BatchNormalization(name="bn_d")(x))
    x = layers.BatchNormalization(name="bn_b")(layers.Conv2D(16, 1, name="conv_b")(x))
    x = layers.ReLU()(layers.Add()([x, layers.Conv2D(16, 1, name="conv_s")(image)]))
    x = layers.Dense(3, name="logits")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(image, layers.Activation("softmax")(x))


def _randomised(model: keras.Model, rng) -> None:
    """Every weight random, batch normalisation's statistics too (in [0.5, 1.5]: variances positive)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomised(layer, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape) for w in layer.get_weights()])


def test_removing_filters_nothing_reads_leaves_the_predictions_unchanged():
    rng = np.random.default_rng(0)
    model = _residual_net()
    _randomised(model, rng)
    # Half of conv_a's filters weak (ranked last) and unread by conv_b: removing them changes
    # nothing, provided every per-channel weight between them (BN, depthwise) is sliced right.
    unread = rng.choice(16, size=8, replace=False)
    conv_a, conv_b = model.get_layer("conv_a"), model.get_layer("conv_b")
    kernel = conv_a.get_weights()[0]
    kernel[..., unread] *= 1e-3
    conv_a.set_weights([kernel])
    kernel_b, bias_b = conv_b.get_weights()
    kernel_b[:, :, unread, :] = 0
    conv_b.set_weights([kernel_b, bias_b])

    result = pruned(model, 0.5)

    assert result.filters == {"conv_a": (16, 8)}
    assert sorted(result.kept_whole) == ["conv_b", "conv_s"]
    assert result.network.get_layer("depthwise").get_weights()[0].shape == (3, 3, 8, 1)
    images = rng.random((4, 12, 12, 3), dtype=np.float32)
    np.testing.assert_allclose(result.network.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    assert result.macs[1] < result.macs[0]


def test_the_strongest_filters_survive_in_multiples_of_the_simd_width():
    rng = np.random.default_rng(1)
    model = _residual_net()
    _randomised(model, rng)
    result = pruned(model, 0.3)  # 16 * 0.7 = 11.2 -> 16 (one vector of 8 would drop below 70%)
    assert result.filters == {"conv_a": (16, 16)}
    result = pruned(model, 0.6)  # 6.4 -> 8
    assert result.filters["conv_a"][1] % SIMD_CHANNELS == 0 and result.filters["conv_a"][1] == 8


@pytest.mark.parametrize(
    "name, narrower",
    [("small_cnn", 5), ("resnet9", 4), ("airbench", 6), ("mobilenet_v2", 19), ("mobilenet_v3_small", 12)],
)
def test_registered_models_prune_inside_nested_backbones_and_copy_every_weight(name, narrower):
    rng = np.random.default_rng(2)
    network = create_model(name, (32, 32, 3), 5, {}, "none")
    _randomised(network, rng)
    images = rng.random((2, 32, 32, 3), dtype=np.float32)
    # Nothing removed: the copy (nested backbones included) predicts exactly what the original does.
    whole = pruned(network, 0.0)
    assert all(before == after for before, after in whole.filters.values())
    np.testing.assert_allclose(whole.network.predict(images, verbose=0), network.predict(images, verbose=0), atol=1e-5)
    half = pruned(network, 0.5)
    assert len(half.filters) == narrower  # the convolutions whose width no residual add ties
    assert half.macs[1] < half.macs[0]
    assert half.network.predict(images, verbose=0).shape == (2, 5)


def test_a_model_with_no_free_width_removes_nothing():
    # The ViT's only convolution (its patch embedding) feeds the token sequence: tied.
    network = create_model("vit", (32, 32, 3), 5, {}, "none")
    result = pruned(network, 0.5)
    assert result.removed == 0 and result.filters == {} and result.kept_whole
    # Rounding to whole vectors: 16 filters at 10% keeps 16.
    assert pruned(_residual_net(), 0.1).removed == 0
