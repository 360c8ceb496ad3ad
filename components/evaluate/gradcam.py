"""Grad-CAM: which regions of an image drove the model's prediction.

The gradient of the predicted class's score with respect to the last convolutional feature
map, averaged over space, weights that map's channels; their sum, kept positive and scaled
to [0, 1], is a coarse heat map resized to the image (Selvaraju et al., 2017). Models with
no spatial feature map (a ViT's tokens) get input-gradient saliency instead, and say so.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from visionpipe.models.classifier import before_network, network_of


def _last_feature_map_layer(network):
    """The last layer of the network whose output is a [N, H, W, C] map bigger than 1x1."""
    for layer in reversed(network.layers):
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and (shape[1] or 0) * (shape[2] or 0) > 1:
            return layer
    return None


def heat_maps(classifier, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Float images [N, H, W, C] in [0, 1] -> ([N, H, W] heat in [0, 1], method used), for the
    class each image is predicted as."""
    images = tf.convert_to_tensor(images, tf.float32)
    network = network_of(classifier)
    layer = _last_feature_map_layer(network) if hasattr(network, "layers") else None
    if layer is None:
        return _saliency(classifier, images), "input-gradient saliency (the model has no spatial feature map)"
    features_and_output = keras.Model(network.inputs, [layer.output, network.output])
    with tf.GradientTape() as tape:
        features, probabilities = features_and_output(before_network(classifier, images), training=False)
        predicted = tf.argmax(probabilities, axis=1)
        score = tf.gather(probabilities, predicted, axis=1, batch_dims=1)
    gradient = tape.gradient(score, features)
    weights = tf.reduce_mean(gradient, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., tf.newaxis]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0]
    return _to_unit(cam.numpy()), f"Grad-CAM on layer {layer.name!r}"


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
