"""The classifier's head: the final activation every registered model ends in, and the one
change a task makes to it.

Every registered builder ends its model in an Activation layer named ``HEAD`` over the logits:
a softmax, for one class per image. Multi-label data (each image carries a set of labels) needs
one independent probability per label, so the same layer becomes a sigmoid. Swapping the
activation of the built layer (rather than giving every builder a task argument) keeps the
builders task-free; Keras saves the layer with its new activation, and every converter maps a
sigmoid to LOGISTIC.
"""

from __future__ import annotations

HEAD = "probabilities"  # the name of every registered model's final activation layer


def head_layer(network):
    """The network's HEAD layer (tfmot's quantization-aware training prefixes it "quant_"), or None."""
    return next((layer for layer in network.layers if layer.name in (HEAD, f"quant_{HEAD}")), None)


def use_sigmoid_head(network, keras) -> None:
    """Makes ``network`` (a registered model, just built) give an independent probability per label."""
    head = head_layer(network)
    if head is None or getattr(head.activation, "__name__", "") != "softmax":
        raise ValueError(
            f"model {network.name} does not end in a softmax layer named {HEAD!r}; it cannot be multi-label"
        )
    head.activation = keras.activations.get("sigmoid")


def is_multi_label(network) -> bool:
    """Whether a built or loaded network ends in the sigmoid head of multi-label data."""
    head = head_layer(network)
    return head is not None and getattr(head.activation, "__name__", "") == "sigmoid"
