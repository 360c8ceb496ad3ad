"""Test-time augmentation: a model's probabilities averaged over views of each image.

``flip``: the image and its mirror image. ``flip_translate`` (airbench): half the weight on
those two, a quarter each on the mirrored pair shifted one pixel up-left and down-right
(reflected borders). ``tta_predict`` serves evaluate (``evaluate.tta``) on any batch of
[N, H, W, C] float images; ``flip_averaged`` builds the flip version into a model, which
export uses for the SavedModel and TFLite files (``export.tta_flip``).
"""

from __future__ import annotations

import tensorflow as tf

TTA_MODES = ("none", "flip", "flip_translate")


def _mirrored(predict, images):
    return 0.5 * (predict(images) + predict(tf.reverse(images, axis=[2])))


def tta_predict(predict, images, mode: str):
    """``predict``: [N, H, W, C] images -> [N, classes] probabilities."""
    if mode == "none":
        return predict(images)
    if mode == "flip":
        return _mirrored(predict, images)
    if mode != "flip_translate":
        raise ValueError(f"unknown test-time augmentation {mode!r}; use one of {', '.join(TTA_MODES)}")
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    shifted = [padded[:, :height, :width], padded[:, 2 : height + 2, 2 : width + 2]]
    translated = 0.5 * (_mirrored(predict, shifted[0]) + _mirrored(predict, shifted[1]))
    return 0.5 * _mirrored(predict, images) + 0.5 * translated


def flip_averaged(model, keras=None):
    """``model`` wrapped so that it returns the average over each image and its mirror image."""
    from visionpipe.models.layers import custom_layers
    from visionpipe.models.registry import default_keras

    keras = default_keras(keras)
    images = keras.Input(model.input_shape[1:], name="image")
    mirrored = custom_layers(keras).Mirror(name="mirror")(images)
    averaged = keras.layers.Average(name="flip_average")([model(images), model(mirrored)])
    return keras.Model(images, averaged, name=f"{model.name}_flip_tta")
