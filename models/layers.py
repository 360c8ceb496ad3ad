"""The few layers the registered models need that Keras does not have.

They are made for a given Keras module (``custom_layers(keras)``), like the builders, so the
same classes exist in Keras 3 and in a tf_keras twin; each is registered for saving under the
``visionpipe`` package, so ``model.keras`` files load wherever ``visionpipe.models`` is
imported.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np


@functools.cache
def custom_layers(keras) -> SimpleNamespace:
    """The layers made for ``keras`` (Keras 3 or tf_keras), once per module (cached): each is
    registered for saving as ``visionpipe>Name``, in this order."""
    register = functools.partial(keras.saving.register_keras_serializable, package="visionpipe")
    return SimpleNamespace(
        PositionEmbedding=register(name="PositionEmbedding")(_position_embedding(keras)),
        Scale=register(name="Scale")(_scale(keras)),
        Whitening=register(name="Whitening")(_whitening(keras)),
        Mirror=register(name="Mirror")(_mirror(keras)),
        PartialDirac=register(name="PartialDirac")(_partial_dirac(keras)),
        **_fused_training_layers(keras, register),
    )


def _fused_training_layers(keras, register) -> dict[str, type]:
    """BatchNormalization, GELU and the 3x3 convolution that train with ``models.fused_kernels``
    in Keras 3 on TensorFlow. tf_keras' twin gets Keras' plain layers, unregistered: its
    BatchNormalization is fused already, and tfmot knows layers by their exact class."""
    if _keras_ops(keras) is None:
        return {
            "FusedBatchNormalization": keras.layers.BatchNormalization,
            "Gelu": functools.partial(keras.layers.Activation, "gelu"),
            "SmallMapConv2D": keras.layers.Conv2D,
        }
    return {
        "FusedBatchNormalization": register(name="FusedBatchNormalization")(_fused_batch_normalization(keras)),
        "Gelu": register(name="Gelu")(_gelu(keras)),
        "SmallMapConv2D": register(name="SmallMapConv2D")(_small_map_conv2d(keras)),
    }


def _keras_ops(keras):
    """``keras.ops`` in Keras 3; None in tf_keras, whose layers call TensorFlow directly."""
    return keras.ops if hasattr(keras, "ops") else None


def _position_embedding(keras) -> type:
    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned embedding per token position to [batch, tokens, dim] inputs."""

        def build(self, input_shape):
            self.embedding = self.add_weight(
                name="embedding", shape=tuple(input_shape[1:]), initializer=keras.initializers.TruncatedNormal(0.02)
            )

        def call(self, tokens):
            return tokens + self.embedding

    return PositionEmbedding


def _scale(keras) -> type:
    class Scale(keras.layers.Layer):
        """Multiplies by a fixed factor (airbench scales its logits by 1/9)."""

        def __init__(self, factor: float, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return Scale


def _whitening(keras) -> type:
    ops = _keras_ops(keras)

    class Whitening(keras.layers.Layer):
        """A valid convolution whose fixed kernel whitens the input's patches, set from training
        images by ``adapt_from_data``; its bias learns for the first ``bias_epochs`` epochs only
        (``on_epoch_begin`` flips a multiplier, so nothing needs recompiling)."""

        def __init__(self, filters: int, kernel_size: int, bias_epochs: int = 3, eps: float = 5e-4, **kwargs):
            super().__init__(**kwargs)
            self.filters, self.kernel_size, self.bias_epochs, self.eps = filters, kernel_size, bias_epochs, eps

        def adapt_from_data(self, images) -> None:
            """Kernel = the eigenvectors of the patch covariance of ``images`` (this layer's
            inputs), scaled by 1/sqrt(eigenvalue), and their negatives (airbench's init)."""
            x = np.asarray(images, np.float64)
            k, channels = self.kernel_size, x.shape[-1]
            h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
            # Patch vectors in the kernel's (row, column, channel) order.
            patches = np.stack([x[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)], axis=3)
            patches = patches.reshape(-1, k * k * channels)
            eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
            order = np.argsort(eigenvalues)[::-1]
            scaled = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + self.eps)
            kernel = np.concatenate([scaled, -scaled], axis=1).reshape(k, k, channels, -1)
            self.kernel.assign(kernel[..., : self.filters].astype(np.float32))

        def on_epoch_begin(self, epoch: int) -> None:
            self.bias_trainable.assign(1.0 if epoch < self.bias_epochs else 0.0)

        def build(self, input_shape):
            shape = (self.kernel_size, self.kernel_size, input_shape[-1], self.filters)
            self.kernel = self.add_weight(name="kernel", shape=shape, initializer="zeros", trainable=False)
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            self.bias_trainable = self.add_weight(name="bias_trainable", shape=(), initializer="ones", trainable=False)

        def call(self, x):
            if ops is not None:
                y, frozen = ops.conv(x, self.kernel, padding="VALID"), ops.stop_gradient(self.bias)
            else:  # tf_keras
                import tensorflow as tf

                y, frozen = tf.nn.conv2d(x, self.kernel, 1, "VALID"), tf.stop_gradient(self.bias)
            return y + frozen + self.bias_trainable * (self.bias - frozen)

        def get_config(self):
            return {
                **super().get_config(),
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "bias_epochs": self.bias_epochs,
                "eps": self.eps,
            }

    return Whitening


def _mirror(keras) -> type:
    class Mirror(keras.layers.Layer):
        """Flips [N, H, W, C] images left to right (for flip test-time augmentation)."""

        def call(self, images):
            return images[:, :, ::-1, :]

    return Mirror


def _partial_dirac(keras) -> type:
    ops = _keras_ops(keras)

    class PartialDirac(keras.initializers.Initializer):
        """A convolution kernel whose first min(in, out) filters pass their own input channel
        through unchanged (identity), the rest PyTorch's default uniform init (airbench's init)."""

        def __call__(self, shape, dtype=None):
            kh, kw, fan_in, fan_out = shape
            limit = 1.0 / np.sqrt(kh * kw * fan_in)
            kernel = np.random.default_rng().uniform(-limit, limit, shape)
            n = min(fan_in, fan_out)
            kernel[..., :n] = 0.0
            kernel[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
            return keras.ops.convert_to_tensor(kernel, dtype or "float32") if ops is not None else kernel

        def get_config(self):
            return {}

    return PartialDirac


def _fused_batch_normalization(keras) -> type:
    from visionpipe.models import fused_kernels

    class FusedBatchNormalization(keras.layers.BatchNormalization):
        """Keras' BatchNormalization whose training step runs TensorFlow's fused kernel
        (``fused_kernels.batch_norm_training``); inference (so every export) and what that kernel
        does not cover (masks, renorm, synchronized statistics, other ranks) run Keras' code.
        The moving statistics follow Keras' rule: moving = moving * momentum + batch * (1 - momentum)."""

        def call(self, inputs, training=None, mask=None):
            if not (training and self.trainable and self._fused_kernel_applies(inputs, mask)):
                return super().call(inputs, training=training, mask=mask)
            outputs, mean, variance = fused_kernels.batch_norm_training(
                inputs, self.gamma if self.scale else None, self.beta if self.center else None, self.epsilon
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return keras.ops.cast(outputs, self.compute_dtype)

        def _fused_kernel_applies(self, inputs, mask) -> bool:
            plain = mask is None and not self.renorm and not self.synchronized
            return (
                plain
                and keras.backend.backend() == "tensorflow"
                and fused_kernels.fused_batch_norm_applies(inputs, self.axis)
            )

    return FusedBatchNormalization


def _gelu(keras) -> type:
    from visionpipe.models import fused_kernels

    class Gelu(keras.layers.Layer):
        """Exact GELU (``keras.activations.gelu``, approximate=False); in training on TensorFlow
        its forward and gradient are each one XLA-compiled loop (``fused_kernels.gelu``)."""

        def call(self, x, training=None):
            if training and keras.backend.backend() == "tensorflow":
                return fused_kernels.gelu(x)
            return keras.activations.gelu(x, approximate=False)

    return Gelu


def _small_map_conv2d(keras) -> type:
    from visionpipe.models import fused_kernels

    class SmallMapConv2D(keras.layers.Conv2D):
        """Keras' Conv2D whose training step on TensorFlow computes a 3x3 kernel's gradient on
        small feature maps as nine matrix products (``fused_kernels.small_map_conv``); anything
        else, and inference, is Keras' own code."""

        def call(self, inputs, training=None):
            applies = fused_kernels.small_map_conv_applies(
                inputs, self.kernel, self.strides, self.padding, self.dilation_rate, self.groups
            )
            if not (
                training and applies and self.data_format == "channels_last" and keras.backend.backend() == "tensorflow"
            ):
                return super().call(inputs)
            outputs = fused_kernels.small_map_conv(inputs, keras.ops.cast(self.kernel, inputs.dtype))
            if self.use_bias:
                outputs = outputs + keras.ops.cast(self.bias, outputs.dtype)
            return outputs if self.activation is None else self.activation(outputs)

    return SmallMapConv2D
