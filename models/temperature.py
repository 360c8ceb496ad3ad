"""A trained classifier with its logits divided by a fitted temperature before the softmax, and,
for imbalanced data, a fitted offset added to each class's logit (a prior correction).

evaluate fits both (``components.common.calibration``, ``components.common.prior_correction``);
export builds them in here, so the SavedModel, every TFLite file and ONNX all serve the
probabilities evaluate judged. Both are one Rescaling (``logits * 1/T + offsets``) in front of a
new softmax: two ops every converter handles, int8 included. Every registered model ends in a
softmax layer named ``probabilities``.
"""

from __future__ import annotations

from visionpipe.models.classifier import before_network, network_of
from visionpipe.models.head import HEAD, head_layer
from visionpipe.models.registry import default_keras


def with_temperature(classifier, temperature: float, keras=None, logit_offsets: list[float] | None = None):
    """``classifier`` (Input -> [normalize] -> network) with softmax(logits / temperature [+ logit_offsets])."""
    keras = default_keras(keras)
    if temperature == 1.0 and logit_offsets is None:
        return classifier
    network = network_of(classifier)
    # tfmot's quantization-aware training wraps every layer and prefixes its name with "quant_".
    head = head_layer(network)
    if head is None:
        raise ValueError(
            f"model {network.name} has no final softmax layer named {HEAD!r}; temperature scaling and prior "
            "correction need it (set evaluate.temperature_scaling: false, evaluate.prior_correction: false)"
        )
    # tfmot's strip_pruning reuses the unwrapped layers in a new graph, so in a tf_keras twin the
    # head has a node per graph: the last one is this network's (Keras 3 has one node per layer).
    head_input = head.get_input_at(-1) if hasattr(head, "get_input_at") else head.input
    to_logits = keras.Model(network.inputs, head_input, name=f"{network.name}_logits")
    images = keras.Input(classifier.input_shape[1:], name="image")
    logits = to_logits(before_network(classifier, images))
    offset = 0.0 if logit_offsets is None else [float(o) for o in logit_offsets]
    scaled = keras.layers.Rescaling(1.0 / temperature, offset, dtype="float32", name="temperature")(logits)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name=HEAD)(scaled)
    return keras.Model(images, probabilities, name=f"{classifier.name}_calibrated")
