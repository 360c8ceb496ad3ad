"""The classifier every stage trains, evaluates and exports: ``image -> [normalise] -> model``.

``preprocessing_spec`` fixes what the model sees (size, channels, resize policy, and the
train split's mean/std from validate); ``build_classifier`` puts the registered model behind
a normalisation layer with that mean/std (models that bring their own input scaling, such as
ImageNet backbones, take the [0, 1] image directly) and loads ``model.weights`` when it names
a file. Training, the tune stage and the compression tools all build through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionpipe.models.config import ModelConfig, PreprocessingConfig
from visionpipe.models.preprocessing import PreprocessingSpec, normalization_layer
from visionpipe.models.registry import create_model, default_keras, entry
from visionpipe.pipeline.errors import UserError


def preprocessing_spec(
    preprocessing: PreprocessingConfig, pixel_mean: list[float] | None, pixel_std: list[float] | None
) -> PreprocessingSpec:
    """The spec from the config and the train split's pixel statistics (None: neutral values)."""
    p = preprocessing
    return PreprocessingSpec(
        height=p.image_size[0],
        width=p.image_size[1],
        channels=p.channels,
        resize_policy=p.resize_policy,
        mean=_per_channel(pixel_mean or [0.5], p.channels),
        std=_per_channel(pixel_std or [0.25], p.channels),
        crop_fraction=p.crop_fraction,
    )


def _per_channel(values: list[float], channels: int) -> tuple[float, ...]:
    """Statistics measured in another channel count (recipe auto trains all-gray data, which ingest
    measured as RGB, in one channel): their mean for one channel, repeated for three."""
    if len(values) == channels:
        return tuple(values)
    return (float(np.mean(values)),) * channels


def build_classifier(
    spec: PreprocessingSpec, num_classes: int, model: ModelConfig, keras=None, multi_label: bool = False
):
    """The registered model behind the input and its normalisation, with ``model.weights``;
    ``multi_label``: a sigmoid probability per label (``models.head``)."""
    keras = default_keras(keras)
    inputs = keras.Input(spec.input_shape, name="image")
    network = create_model(
        model.name, spec.input_shape, num_classes, model.args, model.weights, keras=keras, multi_label=multi_label
    )
    x = normalization_layer(spec, keras)(inputs) if entry(model.name).normalize else inputs
    classifier = keras.Model(inputs, network(x), name=f"{model.name}_classifier")
    if model.weights not in ("none", *entry(model.name).pretrained):
        load_weights_file(classifier, Path(model.weights))
    return classifier


def load_weights_file(classifier, path: Path) -> tuple[int, int]:
    """Loads a weights file (``.weights.h5``, ``.h5`` or ``.keras``) onto the classifier,
    skipping layers whose weights do not fit (e.g. a head trained for other classes); returns
    (weights changed, weights in the model) so the caller can say what was loaded."""
    if not path.is_file():
        raise UserError(f"model.weights file {path} does not exist; give a .weights.h5, .h5 or .keras file, or none")
    before = [np.array(v) for v in classifier.weights]
    try:
        classifier.load_weights(str(path), skip_mismatch=True)
    except Exception as err:  # the file's own format error says what is wrong
        raise UserError(f"cannot load model.weights {path}: {type(err).__name__}: {err}") from None
    changed = sum(not np.array_equal(b, np.array(v)) for b, v in zip(before, classifier.weights, strict=True))
    if not changed:
        raise UserError(
            f"model.weights {path} has no weights that fit this model ({classifier.name}); was it saved from "
            "the same model.name?"
        )
    return changed, len(before)


def network_of(classifier):
    """The registered model inside a classifier from ``build_classifier``."""
    return classifier.layers[-1]  # Input -> [normalize] -> network


def batch_norm_states(network) -> list[dict]:
    """Each BatchNormalization layer's momentum and trainable flag, in build order (nested
    models included): what a twin built with another Keras module must copy to fine-tune as the
    trained model trained. A frozen one (a transfer-learned backbone's) normalises with its
    moving statistics even in training; a builder's momentum may have been changed after it."""
    return [{"momentum": float(layer.momentum), "trainable": bool(layer.trainable)} for layer in _batch_norms(network)]


def set_batch_norm_states(network, states: list[dict]) -> None:
    """Gives ``network``'s BatchNormalization layers the ``batch_norm_states`` of another build."""
    layers = list(_batch_norms(network))
    if len(layers) != len(states):
        raise ValueError(f"{network.name} has {len(layers)} BatchNormalization layers, the trained model {len(states)}")
    for layer, state in zip(layers, states, strict=True):
        layer.momentum, layer.trainable = state["momentum"], state["trainable"]


def _batch_norms(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model, e.g. a keras.applications backbone
            yield from _batch_norms(layer)
        elif type(layer).__name__ == "BatchNormalization":  # the same name in Keras 3 and tf_keras
            yield layer


def before_network(classifier, images):
    """``images`` through what sits between the classifier's input and its network (the
    normalisation, for models that have it): what the network itself receives."""
    for layer in classifier.layers[1:-1]:
        images = layer(images)
    return images


def adapt_to_data(classifier, images: np.ndarray, keras=None) -> list[str]:
    """Shows training images to the layers that initialise from data (``adapt_from_data``, e.g.
    airbench's whitening layer), each seeing them as it will in training: normalised, and
    through the layers before it. Returns the names of the layers adapted."""
    keras = default_keras(keras)
    network = network_of(classifier)
    layers = [layer for layer in network._flatten_layers() if hasattr(layer, "adapt_from_data")]
    if not layers:
        return []
    inputs = np.asarray(before_network(classifier, images))
    for layer in layers:
        layer.adapt_from_data(keras.Model(network.inputs, layer.input).predict(inputs, batch_size=256, verbose=0))
    return [layer.name for layer in layers]
