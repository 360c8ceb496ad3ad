"""The TF Serving SavedModel: encoded image bytes in, class probabilities and names out.

Decoding and resizing inside the graph are ``models.preprocessing.load_image``: the code that
fed training. The input is named ``image_bytes`` so TF Serving's REST API accepts
``{"instances": [{"b64": "..."}]}``.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from models.preprocessing import PreprocessingSpec, load_image

SIGNATURE = "serving_default"


def export_saved_model(model: keras.Model, spec: PreprocessingSpec, classes: list[str], path: Path) -> None:
    class_names = tf.constant(classes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        images = tf.map_fn(lambda b: load_image(b, spec), image_bytes,
                           fn_output_signature=tf.TensorSpec(spec.input_shape, tf.float32))
        probabilities = model(images, training=False)
        n = tf.shape(probabilities)[0]
        return {"probabilities": probabilities,
                "classes": tf.tile(class_names[tf.newaxis], [n, 1]),
                "predicted_class": tf.gather(class_names, tf.argmax(probabilities, axis=1))}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(str(path), verbose=False)


def load_signature(path: Path):
    return tf.saved_model.load(str(path)).signatures[SIGNATURE]
