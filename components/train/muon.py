"""Muon for convolutional networks: Keras' ``Muon`` extended to convolution kernels.

Keras 3's ``keras.optimizers.Muon`` orthogonalises the update of 2-D variables only and sends
every other variable to its AdamW step, so on a CNN, whose weights are 4-D convolution
kernels, it is AdamW. airbench94_muon (Jordan et al.) reaches its accuracy in fewer steps by
orthogonalising each convolution's update as the matrix it is: a [h, w, in, out] kernel
multiplies [h * w * in] patches into [out] channels. ``ConvolutionMuon`` does that, for the
kernels ``muon_kernels`` picks: every dense and convolution kernel but the classification
head's (Muon's authors keep the output layer on AdamW, as Keras' docstring says). Depthwise
kernels, biases, normalisation parameters and embeddings take the AdamW step, as in Keras.
"""

from __future__ import annotations

import keras
from keras import ops

# Layers whose ``kernel`` is the matrix of a linear map (4-D for convolutions). Depthwise
# convolutions are not among them: each channel's few taps are not a matrix to orthogonalise.
MATRIX_LAYERS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def muon_kernels(model: keras.Model) -> list:
    """The trainable kernels that take Muon's step: every dense and convolution kernel but the
    last dense layer's (the classification head)."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, MATRIX_LAYERS) and layer.trainable]
    heads = [layer for layer in layers if isinstance(layer, keras.layers.Dense)][-1:]
    return [layer.kernel for layer in layers if layer not in heads and layer.kernel.trainable]


class ConvolutionMuon(keras.optimizers.Muon):
    """Muon's step for the variables in ``muon_variables`` (optimizer variable keys; set before
    the optimizer is built), flattening convolution kernels to [h * w * in, out]; Keras' AdamW
    step for the rest."""

    muon_variables: set | frozenset = frozenset()

    def _should_use_adamw(self, variable):
        return self._var_key(variable) not in self.muon_variables

    def _muon_update_step(self, gradient, variable, lr, m):
        # Keras' own step (momentum, Nesterov, Newton-Schulz, its RMS scaling) on the kernel's matrix.
        self.assign_add(m, ops.add(gradient, m * (self.momentum - 1)))
        direction = ops.add(gradient, self.momentum * m) if self.nesterov else m
        matrix = ops.reshape(direction, (-1, direction.shape[-1]))
        update = self.lr_adjust(lr * self.zeropower_via_newtonschulz5(matrix, self.ns_steps))
        self.assign_sub(variable, ops.reshape(update, variable.shape))
