"""Training-time kernels for TensorFlow where Keras 3's own ops are slow on a CPU.

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
  computed in float32 whatever the input's dtype;
- ``small_map_conv``: a 3x3 convolution whose kernel gradient on small feature maps is nine
  matrix products, where oneDNN's weight-gradient kernel is slow.

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
    output has the inputs' dtype, the statistics are float32. The variance is Keras' (biased)
    one: the kernel returns the unbiased n / (n - 1) times it (n = N*H*W; 0 when n is 1)."""
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
    n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
    return outputs, mean, variance * (n - 1.0) / n


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


# Feature maps up to this many pixels (8x8) get their 3x3 convolutions' weight gradient as nine
# matrix products: oneDNN's weight-gradient kernel is 4.3x slower at 3x3 maps and 1.3x at 7x7
# (bfloat16, batch 1024, AMX), faster again from 15x15 on (BENCHMARKS.md, "cifar_94 in bfloat16").
SMALL_MAP_PIXELS = 64


def small_map_conv_applies(inputs: tf.Tensor, kernel: tf.Tensor, strides, padding: str, dilation_rate, groups) -> bool:
    """A stride-1, "same"-padded, undilated, ungrouped 3x3 convolution of NHWC maps of at most
    ``SMALL_MAP_PIXELS`` pixels."""
    shape = inputs.shape
    plain = tuple(strides) == (1, 1) and padding == "same" and tuple(dilation_rate) == (1, 1) and groups == 1
    small = shape.rank == 4 and None not in shape[1:3] and shape[1] * shape[2] <= SMALL_MAP_PIXELS
    return plain and small and tuple(kernel.shape[:2]) == (3, 3)


@tf.custom_gradient
def small_map_conv(inputs: tf.Tensor, kernel: tf.Tensor):
    """The 3x3 "same" convolution of ``inputs`` (oneDNN), whose kernel gradient is the sum over
    images and pixels of each of the nine shifted inputs times the output gradient: nine
    [cin x N*H*W] @ [N*H*W x cout] products."""
    outputs = tf.nn.conv2d(inputs, kernel, 1, "SAME")

    def gradient(upstream: tf.Tensor):
        height, width = inputs.shape[1], inputs.shape[2]
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        shifted = [padded[:, i : i + height, j : j + width, :] for i in range(3) for j in range(3)]
        kernel_gradient = tf.stack([_pixel_sum_of_products(x, upstream) for x in shifted])
        input_gradient = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(inputs), filter=kernel, out_backprop=upstream, strides=[1, 1, 1, 1], padding="SAME"
        )
        return input_gradient, tf.cast(tf.reshape(kernel_gradient, kernel.shape), kernel.dtype)

    return outputs, gradient


def _pixel_sum_of_products(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """sum over images and pixels of a[..., :, None] * b[..., None, :]: [cin, cout]. The sum runs
    in two halves (a batched product) when the pixel count is even: oneDNN splits one long
    reduction poorly over its threads (7x7 maps: 62 ms against 78 in one product)."""
    a, b = tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(b, [-1, b.shape[-1]])

    def in_halves():
        halves = tf.matmul(tf.reshape(a, [2, -1, a.shape[-1]]), tf.reshape(b, [2, -1, b.shape[-1]]), transpose_a=True)
        return tf.reduce_sum(halves, axis=0)

    return tf.cond(tf.shape(a)[0] % 2 == 0, in_halves, lambda: tf.matmul(a, b, transpose_a=True))
