"""Loading an exported SavedModel's signature and calling it on encoded images, as TF Serving
does: what predict, evaluate's served-model comparison and export's scoring share."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from visionpipe.serving.signature import IMAGE_INPUT, PROBABILITIES, SIGNATURE


def load_signature(path: Path, name: str = SIGNATURE):
    return tf.saved_model.load(str(path)).signatures[name]


def served_probabilities(signature, image_bytes):
    """The serving signature's class probabilities for a batch of encoded images."""
    return signature(**{IMAGE_INPUT: image_bytes})[PROBABILITIES]
