"""Training-time kernels for TensorFlow that do in one or two passes what Keras 3 does in a dozen.

Keras 3 writes batch normalization and GELU as chains of elementwise operations and reductions
(moments, subtract, rsqrt, multiply, add; erfc, multiply, add), and TensorFlow without XLA runs
each as its own pass over the activations, forward and again for every term of the gradient. On
a CPU those passes cost more than the convolutions: on airbench94 in bfloat16 (batch 1024),
BatchNormalization + GELU took 1.65 s of CPU per step against 0.95 s for every convolution
(BENCHMARKS.md, "cifar_94 in bfloat16"). Here:

- ``batch_norm_training``: TensorFlow's fused batch normalization (``FusedBatchNormV3``, a
  oneDNN kernel on x86, and its fused gradient), which normalizes with the batch's statistics
  and returns them;
- ``gelu``: exact (erf) GELU whose forward and backward are each one XLA-compiled loop,
  computed in float32 whatever the input's dtype.

Only the layers' training path uses them (``models.layers``); inference, and so every exported
file, runs Keras' own operations.
"""

from __future__ import annotations

import math

import tensorflow as tf

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def fused_batch_norm_applies(inputs: tf.Tensor, axis: int) -> bool:
    """FusedBatchNormV3 normalizes the channels of 4-D NHWC tensors of these dtypes."""
    rank = inputs.shape.rank
    return rank == 4 and axis in (-1, 3) and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)


def batch_norm_training(
    inputs: tf.Tensor, gamma: tf.Tensor | None, beta: tf.Tensor | None, epsilon: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(normalized inputs, batch mean, batch variance) of NHWC ``inputs`` over N, H and W; the
    output has the inputs' dtype, the statistics are float32. The variance is the unbiased one
    (n / (n - 1), n = N*H*W), as PyTorch keeps it; n is in the hundreds of thousands here."""
    channels = inputs.shape[-1]
    outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=inputs,
        scale=tf.ones([channels]) if gamma is None else tf.cast(gamma, tf.float32),
        offset=tf.zeros([channels]) if beta is None else tf.cast(beta, tf.float32),
        mean=tf.zeros([0]),
        variance=tf.zeros([0]),
        epsilon=epsilon,
        is_training=True,
        data_format="NHWC",
    )
    return outputs, mean, variance


@tf.function(jit_compile=True)
def _gelu_forward(x: tf.Tensor) -> tf.Tensor:
    x32 = tf.cast(x, tf.float32)
    return tf.cast(x32 * 0.5 * tf.math.erfc(-x32 * _INV_SQRT2), x.dtype)


@tf.function(jit_compile=True)
def _gelu_backward(x: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
    x32 = tf.cast(x, tf.float32)
    cdf = 0.5 * tf.math.erfc(-x32 * _INV_SQRT2)
    pdf = tf.exp(-0.5 * x32 * x32) * _INV_SQRT_2PI
    return tf.cast(tf.cast(upstream, tf.float32) * (cdf + x32 * pdf), upstream.dtype)


@tf.custom_gradient
def gelu(x: tf.Tensor):
    """x * Phi(x) (Keras' ``gelu``, approximate=False), forward and gradient each one fused loop."""

    def gradient(upstream: tf.Tensor) -> tf.Tensor:
        return _gelu_backward(x, upstream)

    return _gelu_forward(x), gradient
