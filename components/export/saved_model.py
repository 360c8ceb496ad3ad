"""The TF Serving SavedModel: encoded image bytes in, class probabilities and names out (for a
multi-label model also each label's threshold and the labels at or above it).

Decoding and resizing inside the graph are ``models.preprocessing.load_image``: the code that
fed training. The names are ``serving/signature.py``'s; the input is named
``image_bytes`` so TF Serving's REST API accepts
``{"instances": [{"b64": "..."}]}``. A second signature, ``preprocess``, returns the images
exactly as the model receives them, so a client can check what the model sees.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from visionpipe.models.preprocessing import PreprocessingSpec, load_image
from visionpipe.serving.signature import (
    CLASSES,
    IMAGE_INPUT,
    PREDICTED_CLASS,
    PREDICTED_LABELS,
    PREPROCESS_SIGNATURE,
    PROBABILITIES,
    SIGNATURE,
    THRESHOLDS,
)


def export_saved_model(
    model: keras.Model,
    spec: PreprocessingSpec,
    classes: list[str],
    path: Path,
    thresholds: list[float] | None = None,
) -> None:
    """``thresholds``: a multi-label model's decision threshold per label (evaluate's)."""
    class_names = tf.constant(classes)
    cut = None if thresholds is None else tf.constant(thresholds, tf.float32)
    bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_INPUT)

    def load_batch(image_bytes):
        return tf.map_fn(
            lambda b: load_image(b, spec), image_bytes, fn_output_signature=tf.TensorSpec(spec.input_shape, tf.float32)
        )

    @tf.function(input_signature=[bytes_spec])
    def preprocess(image_bytes):
        return {"images": load_batch(image_bytes)}

    @tf.function(input_signature=[bytes_spec])
    def serve(image_bytes):
        probabilities = model(load_batch(image_bytes), training=False)
        n = tf.shape(probabilities)[0]
        names = tf.tile(class_names[tf.newaxis], [n, 1])
        outputs = {
            PROBABILITIES: probabilities,
            CLASSES: names,
            PREDICTED_CLASS: tf.gather(class_names, tf.argmax(probabilities, axis=1)),
        }
        if cut is not None:
            outputs[THRESHOLDS] = tf.tile(cut[tf.newaxis], [n, 1])
            outputs[PREDICTED_LABELS] = tf.where(probabilities >= cut, names, tf.zeros_like(names))
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve)
    archive.add_endpoint(PREPROCESS_SIGNATURE, preprocess)
    archive.write_out(str(path), verbose=False)
