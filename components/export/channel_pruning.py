"""Channel pruning: a narrower copy of a trained Keras network, with whole filters removed.

Magnitude pruning (tfmot) zeroes single weights, which makes a file compress better but not run
faster on a phone's CPU (BENCHMARKS.md: LiteRT's XNNPACK does not use the zeros). Removing a
convolution's least important filters instead removes work: the convolution computes fewer
channels and everything that reads them reads fewer (Li et al., "Pruning Filters for Efficient
ConvNets", 2017).

A convolution can lose filters only when its channels reach, through layers that treat each
channel on its own (batch normalisation, elementwise activations, pooling, dropout, depthwise
convolutions), nothing but layers that mix channels with weights of their own: the next
convolution or a dense layer. A channel that is added to or concatenated with another tensor
(a residual connection), or that reaches anything else (a custom layer, the model's output),
ties the convolution's width to the rest of the graph: that convolution keeps every filter.
``pruned`` finds the ones that can, rebuilds the network with each of them
narrower (its filters ranked by their L1 norm times the following batch normalisation's scale:
their weight in what the next layer reads), copies the surviving weights, and reports the
multiply-accumulates before and after. The copy is then fine-tuned (``distill.py``).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from visionpipe.models.layers import custom_layers

# Elementwise activations: each output channel depends on the same input channel only.
_ELEMENTWISE = {"relu", "relu6", "silu", "swish", "gelu", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish",
                "tanh", "elu", "selu", "linear", "leaky_relu", "mish", "softplus"}  # fmt: skip
_PER_CHANNEL = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.ZeroPadding2D,
    custom_layers(keras).Gelu,
)
# Convolutions the pruner reads and narrows: Keras' own and airbench's (same layer, another gradient).
_CONVOLUTIONS = (keras.layers.Conv2D, custom_layers(keras).SmallMapConv2D)
SIMD_CHANNELS = 8  # kept filters are rounded up to a multiple of this: XNNPACK's kernels work in vectors


@dataclasses.dataclass(frozen=True)
class Pruned:
    """The narrower network and what was done to it."""

    network: keras.Model
    filters: dict[str, tuple[int, int]]  # pruned convolution -> (filters before, after)
    kept_whole: list[str]  # convolutions whose width is tied to the graph (residual adds, ...)
    macs: tuple[int, int]  # multiply-accumulates of the convolutions and dense layers, before and after

    @property
    def removed(self) -> int:
        """Filters removed in all (0: nothing prunable, or ``fraction`` rounds to every filter kept)."""
        return sum(before - after for before, after in self.filters.values())

    def describe(self) -> str:
        before, after = self.macs
        return (
            f"channel pruning: {len(self.filters)} convolutions narrower "
            f"({', '.join(f'{n} {a}->{b}' for n, (a, b) in list(self.filters.items())[:4])}"
            f"{', ...' if len(self.filters) > 4 else ''}), {len(self.kept_whole)} kept whole (tied to a residual "
            f"add or the output); multiply-accumulates {before / 1e6:.1f}M -> {after / 1e6:.1f}M "
            f"({after / max(before, 1):.0%})"
        )


def pruned(network: keras.Model, fraction: float) -> Pruned:
    """``network`` with ``fraction`` of each prunable convolution's filters removed (at least one
    and, when it has more, a multiple of ``SIMD_CHANNELS`` kept), its surviving weights copied.
    A nested model (an applications backbone) is pruned inside; its outputs keep their width."""
    inner = {layer.name: pruned(layer, fraction) for layer in network.layers if isinstance(layer, keras.Model)}
    candidates = _convolutions(network)
    inside = _operation_ids(network)
    kept = {
        conv.name: _strongest(inside, network, conv, fraction)
        for conv in candidates
        if _width_is_free(inside, network, conv)
    }
    narrower = keras.models.clone_model(
        network,
        clone_function=lambda layer: inner[layer.name].network if layer.name in inner else _narrower(layer, kept),
    )
    channels = _channels_out(network, kept)
    for layer in network.layers:
        if layer.weights and layer.name not in inner:  # (clone_model renames input layers)
            narrower.get_layer(layer.name).set_weights(_sliced(layer, channels))
    filters = {name: (network.get_layer(name).filters, len(index)) for name, index in kept.items()}
    whole = [conv.name for conv in candidates if conv.name not in kept]
    for part in inner.values():
        filters.update(part.filters)
        whole += part.kept_whole
    return Pruned(narrower, filters, whole, (_macs(network), _macs(narrower)))


def _convolutions(network: keras.Model) -> list[keras.layers.Conv2D]:
    return [
        layer
        for layer in network.layers
        if type(layer) in _CONVOLUTIONS and layer.groups == 1 and len(layer._inbound_nodes) == 1
    ]


def _operation_ids(network: keras.Model) -> set[int]:
    """The ids of ``network``'s layers and operations (``x + 3``): a layer's readers outside it
    (another model built on the same layers) are not its readers here. Built once per network."""
    return {id(item) for item in network.operations}


def _consumers(inside: set[int], network: keras.Model, layer) -> list:
    """The layers and operations of ``network`` (``inside``: ``_operation_ids``) that read
    ``layer``'s output (None for the model's output)."""
    readers = [node.operation for node in layer._outbound_nodes if id(node.operation) in inside]
    is_output = any(t is out for t in layer._inbound_nodes[0].output_tensors for out in network.outputs)
    return [*readers, *([None] if is_output or not readers else [])]


def _passes_channels(layer) -> bool:
    if isinstance(layer, _PER_CHANNEL):
        return True
    if type(layer) is keras.layers.Activation:
        return getattr(layer.activation, "__name__", "") in _ELEMENTWISE
    return type(layer) is keras.layers.DepthwiseConv2D and layer.depth_multiplier == 1


def _reads_channels(layer) -> bool:
    """A layer that mixes its input channels with a weight per input channel (it can read fewer)."""
    return (type(layer) in _CONVOLUTIONS and layer.groups == 1) or type(layer) is keras.layers.Dense


def _width_is_free(inside: set[int], network: keras.Model, conv) -> bool:
    """Whether ``conv``'s channels pass only through per-channel layers to layers that read them
    with weights of their own (False: its width is tied to the graph)."""
    frontier = [conv]
    while frontier:
        layer = frontier.pop()
        for reader in _consumers(inside, network, layer):
            if reader is None or len(reader._inbound_nodes) != 1:  # the output, or a shared layer
                return False
            if _passes_channels(reader):
                frontier.append(reader)
            elif not _reads_channels(reader):
                return False
    return True


def _strongest(inside: set[int], network: keras.Model, conv, fraction: float) -> np.ndarray:
    """The indices of the filters kept, in order: the largest L1 norm times the scale the batch
    normalisation right after gives each channel."""
    importance = np.abs(np.asarray(conv.kernel)).sum(axis=(0, 1, 2))
    readers = _consumers(inside, network, conv)
    norm = readers[0] if len(readers) == 1 else None
    if isinstance(norm, keras.layers.BatchNormalization) and norm.scale:
        importance *= np.abs(np.asarray(norm.gamma)) / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)
    filters = conv.filters
    keep = max(1, round(filters * (1 - fraction)))
    if filters > SIMD_CHANNELS:
        keep = min(filters, math.ceil(keep / SIMD_CHANNELS) * SIMD_CHANNELS)
    return np.sort(np.argsort(-importance, kind="stable")[:keep])


def _narrower(layer, kept: dict[str, np.ndarray]):
    config = layer.get_config()
    if layer.name in kept:
        config["filters"] = len(kept[layer.name])
    return layer.__class__.from_config(config)


def _incoming(layer, channels: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """Which of its input's original channels ``layer`` reads (None: all of them, or several inputs)."""
    parents = layer._inbound_nodes[0].parent_nodes
    return channels[parents[0].operation.name] if len(parents) == 1 else None


def _channels_out(network: keras.Model, kept: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """Which of its original output channels each layer still has (None: all of them)."""
    channels: dict[str, np.ndarray | None] = {}
    for layer in network.operations:  # in the graph's order: producers first
        incoming = _incoming(layer, channels)
        if layer.name in kept:
            channels[layer.name] = kept[layer.name]
        elif _reads_channels(layer) or incoming is None:
            channels[layer.name] = None
        else:
            channels[layer.name] = incoming
    return channels


def _sliced(layer, channels: dict[str, np.ndarray | None]) -> list[np.ndarray]:
    """``layer``'s weights with the removed channels left out: its own (the last axis of a kernel,
    a bias, batch normalisation's four vectors, a depthwise kernel's channel axis) and its
    inputs' (a kernel's input axis)."""
    weights = [np.asarray(w) for w in layer.get_weights()]
    own, incoming = channels[layer.name], _incoming(layer, channels)
    if _reads_channels(layer):
        kernel = weights[0]
        if incoming is not None:
            kernel = np.take(kernel, incoming, axis=kernel.ndim - 2)
        if own is not None:
            kernel = np.take(kernel, own, axis=-1)
            weights[1:] = [np.take(w, own, axis=0) for w in weights[1:]]
        return [kernel, *weights[1:]]
    if own is None:
        return weights
    if type(layer) is keras.layers.DepthwiseConv2D:
        return [np.take(weights[0], own, axis=2), *(np.take(w, own, axis=0) for w in weights[1:])]
    return [np.take(w, own, axis=0) for w in weights]  # batch normalisation


def _macs(network: keras.Model) -> int:
    """Multiply-accumulates per image of the convolutions and dense layers."""
    total = 0
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            total += _macs(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            out = layer._inbound_nodes[0].output_tensors[0].shape
            total += int(np.prod(layer.kernel.shape)) * out[1] * out[2]
        elif type(layer) is keras.layers.Dense:
            total += int(np.prod(layer.kernel.shape))
    return total
