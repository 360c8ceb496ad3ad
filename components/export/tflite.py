"""TFLite conversion: float32, float16, dynamic-range int8, and int8 calibrated on train images.

The int8 model takes uint8 pixels (0-255, the [0, 1] image times 255) and returns float
probabilities: what a phone camera pipeline hands over, with no float maths before the model.

The int8 conversion and what it keeps in float32: ``int8.py``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from visionpipe.components.export import int8


def _converter(model: keras.Model, workdir: Path) -> tf.lite.TFLiteConverter:
    # Keras 3 models convert through a SavedModel of their inference function.
    model.export(str(workdir), format="tf_saved_model", verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(str(workdir))


def convert_float(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return _converter(model, Path(tmp) / "sm").convert()


def convert_float16(model: keras.Model) -> bytes:
    """float16 weights (half the size; GPU delegates compute in float16, CPUs dequantize)."""
    with tempfile.TemporaryDirectory() as tmp:
        converter = _converter(model, Path(tmp) / "sm")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def convert_dynamic_range(model: keras.Model) -> bytes:
    """int8 weights, float activations quantized on the fly: no calibration data needed."""
    with tempfile.TemporaryDirectory() as tmp:
        converter = _converter(model, Path(tmp) / "sm")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def flex_ops(model_bytes: bytes) -> list[str]:
    """Select-TF ("Flex") ops in a .tflite file: phones without the Flex delegate cannot run them."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=model_bytes)
    except (RuntimeError, ValueError) as err:  # the interpreter refuses unresolved custom ops
        return [str(err)]
    return sorted({op["op_name"] for op in interpreter._get_ops_details() if op["op_name"].startswith("Flex")})


def convert_int8(model: keras.Model, calibration_images: Iterable[np.ndarray], float_ops: str = "auto") -> bytes:
    """calibration_images: float32 [1, H, W, C] arrays in [0, 1] from the train split.
    float_ops: ``export.int8_float_ops`` (``int8.py``)."""
    samples = list(calibration_images)

    def representative_dataset():
        for image in samples:
            yield [image.astype(np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        return int8.convert(_converter(model, Path(tmp) / "sm"), representative_dataset, float_ops)
