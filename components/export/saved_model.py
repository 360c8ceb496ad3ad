"""The TF Serving SavedModel: encoded image bytes in, class probabilities and names out.

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
    PREPROCESS_SIGNATURE,
    PROBABILITIES,
    SIGNATURE,
)


def export_saved_model(model: keras.Model, spec: PreprocessingSpec, classes: list[str], path: Path) -> None:
    class_names = tf.constant(classes)
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
        return {
            PROBABILITIES: probabilities,
            CLASSES: tf.tile(class_names[tf.newaxis], [n, 1]),
            PREDICTED_CLASS: tf.gather(class_names, tf.argmax(probabilities, axis=1)),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve)
    archive.add_endpoint(PREPROCESS_SIGNATURE, preprocess)
    archive.write_out(str(path), verbose=False)
