"""The fused training layers compute what Keras' own layers compute: outputs, gradients and the
moving statistics, in float32 and under mixed bfloat16, and fall back to Keras' code where the
fused kernel does not apply."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.models.layers import custom_layers

CUSTOM = custom_layers(keras)


def _forward_and_gradients(layer, x: tf.Tensor, upstream: tf.Tensor, training: bool):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
    variables = layer.trainable_variables
    gradients = tape.gradient(y, [x, *variables], output_gradients=tf.cast(upstream, y.dtype))
    return [np.asarray(tf.cast(t, tf.float32)) for t in (y, *gradients)]


@pytest.mark.parametrize("scale", [False, True])
def test_fused_batch_normalization_trains_like_keras(scale):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3.0, 2.0, (16, 6, 5, 8)), tf.float32)
    upstream = rng.normal(size=x.shape)
    args = dict(momentum=0.6, epsilon=1e-5, scale=scale, beta_initializer="random_normal")
    fused, plain = CUSTOM.FusedBatchNormalization(**args), keras.layers.BatchNormalization(**args)
    fused.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(fused.get_weights())
    for got, want in zip(
        _forward_and_gradients(fused, x, upstream, True), _forward_and_gradients(plain, x, upstream, True), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Moving statistics: Keras' rule and Keras' (biased) batch variance.
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)
    # Inference runs Keras' code: with the same statistics the outputs agree exactly.
    plain.set_weights(fused.get_weights())
    np.testing.assert_array_equal(fused(x, training=False), plain(x, training=False))


def test_fused_batch_normalization_under_mixed_bfloat16_matches_float32():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 3.0, (32, 8, 8, 16)).astype(np.float32)
    upstream = rng.normal(size=x.shape)
    reference = CUSTOM.FusedBatchNormalization(scale=False)
    mixed = CUSTOM.FusedBatchNormalization(scale=False, dtype="mixed_bfloat16")
    for layer in (reference, mixed):
        layer.build(x.shape)
    want = _forward_and_gradients(reference, tf.constant(x), upstream, True)
    got = _forward_and_gradients(mixed, tf.constant(x, tf.bfloat16), upstream, True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0.05, atol=0.05 * np.abs(w).max())


def test_fused_batch_normalization_of_a_single_value_per_channel_keeps_a_zero_variance():
    x = tf.constant(np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4))  # n = 1
    fused, plain = CUSTOM.FusedBatchNormalization(momentum=0.5), keras.layers.BatchNormalization(momentum=0.5)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance)  # 0.5, not inf or NaN


def test_fused_batch_normalization_falls_back_to_keras_where_the_kernel_does_not_apply():
    x = tf.constant(np.random.default_rng(2).normal(size=(8, 5, 3)), tf.float32)  # rank 3
    fused, plain = CUSTOM.FusedBatchNormalization(), keras.layers.BatchNormalization()
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_gelu_trains_like_keras_exact_gelu(dtype):
    x = tf.constant(np.linspace(-6, 6, 4 * 7 * 3).reshape(4, 7, 3), tf.float32)
    upstream = np.random.default_rng(3).normal(size=x.shape)
    layer = CUSTOM.Gelu(dtype=dtype)
    y, dx = _forward_and_gradients(layer, tf.cast(x, layer.compute_dtype), upstream, True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        want = keras.activations.gelu(x, approximate=False)
    want_dx = tape.gradient(want, x, output_gradients=tf.constant(upstream, tf.float32))
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(y, want, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, want_dx, rtol=tolerance, atol=tolerance * np.abs(upstream).max())
    # Inference runs Keras' gelu itself.
    same_input = tf.cast(x, layer.compute_dtype)
    keras_gelu = keras.activations.gelu(same_input, approximate=False)
    np.testing.assert_array_equal(layer(same_input, training=False), keras_gelu)


@pytest.mark.parametrize(
    ("images", "size", "small"), [(6, 3, True), (5, 3, True), (6, 7, True), (6, 8, True), (6, 9, False)]
)
def test_small_map_conv2d_trains_like_keras_conv2d(images, size, small):
    """(5 images of 3x3: an odd pixel count, summed in one product instead of two halves.)"""
    from visionpipe.models import fused_kernels

    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(images, size, size, 5)), tf.float32)
    upstream = rng.normal(size=(images, size, size, 7))
    args = dict(filters=7, kernel_size=3, padding="same", use_bias=True, bias_initializer="random_normal")
    small_map, plain = CUSTOM.SmallMapConv2D(**args), keras.layers.Conv2D(**args)
    small_map.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(small_map.get_weights())
    applies = fused_kernels.small_map_conv_applies(x, small_map.kernel, (1, 1), "same", (1, 1), 1)
    assert applies == small  # 8x8 = SMALL_MAP_PIXELS is the largest map it takes
    for got, want in zip(
        _forward_and_gradients(small_map, x, upstream, True),
        _forward_and_gradients(plain, x, upstream, True),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_small_map_conv2d_kernel_gradient_under_mixed_bfloat16():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 3, 3, 16)).astype(np.float32)
    upstream = rng.normal(size=(64, 3, 3, 8))
    reference = CUSTOM.SmallMapConv2D(8, 3, padding="same", use_bias=False)
    mixed = CUSTOM.SmallMapConv2D(8, 3, padding="same", use_bias=False, dtype="mixed_bfloat16")
    reference.build(x.shape)
    mixed.build(x.shape)
    mixed.set_weights(reference.get_weights())
    want = _forward_and_gradients(reference, tf.constant(x), upstream, True)
    got = _forward_and_gradients(mixed, tf.constant(x, tf.bfloat16), upstream, True)
    assert mixed.kernel.dtype == "float32"  # the variable stays float32; its gradient is cast back
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0.05, atol=0.03 * np.abs(w).max())
