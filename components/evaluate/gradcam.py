"""Grad-CAM: which regions of an image drove the model's prediction.

The gradient of the predicted class's score with respect to the last convolutional feature
map, averaged over space, weights that map's channels; their sum, kept positive and scaled
to [0, 1], is a coarse heat map resized to the image (Selvaraju et al., 2017). Models with
no spatial feature map (a ViT's tokens) get input-gradient saliency instead, and say so.

Grad-CAM's ReLU can leave nothing: when every weighted feature is negative, or the map is the
same everywhere, the map shows no region at all. Such an image gets input-gradient saliency
too, and its method says why, so a blank heat map is never shown as if it were an answer.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from visionpipe.models.classifier import before_network, network_of

SALIENCY = "input-gradient saliency"


def _last_feature_map_layer(network):
    """The last layer of the network whose output is a [N, H, W, C] map bigger than 1x1."""
    for layer in reversed(network.layers):
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and (shape[1] or 0) * (shape[2] or 0) > 1:
            return layer
    return None


def heat_maps(classifier, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Float images [N, H, W, C] in [0, 1] -> ([N, H, W] heat in [0, 1], the method used for
    each image), for the class each image is predicted as."""
    images = tf.convert_to_tensor(images, tf.float32)
    network = network_of(classifier)
    layer = _last_feature_map_layer(network) if hasattr(network, "layers") else None
    if layer is None:
        return _saliency(classifier, images), [f"{SALIENCY} (the model has no spatial feature map)"] * len(images)
    cam = _grad_cam(network, layer, before_network(classifier, images))
    cam = tf.image.resize(cam[..., tf.newaxis], images.shape[1:3], method="bilinear")[..., 0].numpy()
    grad_cam = f"Grad-CAM on layer {layer.name!r}"
    flat = cam.reshape(len(cam), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    empty = spread <= 1e-6 * np.maximum(np.abs(flat).max(axis=1), 1e-12)
    methods = [
        f"{SALIENCY} ({grad_cam} was {'all zero' if top <= 0 else 'the same everywhere'} for this image)"
        if is_empty
        else grad_cam
        for is_empty, top in zip(empty, flat.max(axis=1), strict=True)
    ]
    if empty.any():
        cam[empty] = _saliency(classifier, tf.boolean_mask(images, empty))
    return _to_unit(cam), methods


def summary(methods: list[str]) -> str:
    """One line for a set of per-image methods: the main one, and how many images used another."""
    counts: dict[str, int] = {}
    for method in methods:
        counts[method] = counts.get(method, 0) + 1
    ordered = sorted(counts, key=counts.__getitem__, reverse=True)
    if len(ordered) <= 1:
        return ordered[0] if ordered else "none"
    others = "; ".join(f"{counts[m]} of {len(methods)} images: {m}" for m in ordered[1:])
    return f"{ordered[0]}; {others}"


def _grad_cam(network, layer, inputs: tf.Tensor) -> tf.Tensor:
    """[N, h, w] Grad-CAM maps on ``layer``'s grid, before scaling."""
    features_and_output = keras.Model(network.inputs, [layer.output, network.output])
    with tf.GradientTape() as tape:
        features, probabilities = features_and_output(inputs, training=False)
        predicted = tf.argmax(probabilities, axis=1)
        score = tf.gather(probabilities, predicted, axis=1, batch_dims=1)
    gradient = tape.gradient(score, features)
    weights = tf.reduce_mean(gradient, axis=[1, 2], keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


def _saliency(classifier, images: tf.Tensor) -> np.ndarray:
    with tf.GradientTape() as tape:
        tape.watch(images)
        probabilities = classifier(images, training=False)
        score = tf.reduce_max(probabilities, axis=1)
    return _to_unit(tf.reduce_max(tf.abs(tape.gradient(score, images)), axis=-1).numpy())


def _to_unit(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to [0, 1] on its own (a flat map stays 0)."""
    top = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return np.where(top > 0, maps / np.maximum(top, 1e-12), 0.0)
