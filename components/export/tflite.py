"""TFLite conversion: float32, float16, dynamic-range int8, and full-integer int8 calibrated on
train images.

The int8 model takes uint8 pixels (0-255, the [0, 1] image times 255) and returns float
probabilities: what a phone camera pipeline hands over, with no float maths before the model.

XNNPACK, the CPU delegate LiteRT applies by default (on phones and here), runs some operators
only in float32: HARD_SWISH (MobileNetV3), the layer norm and attention products of a ViT,
GELU. In a full-integer file they fall back to LiteRT's own kernels, and each one cuts the
graph into another delegate partition: MobileNetV3-Small's int8 file ran 2.5x slower than its
float file (BENCHMARKS.md). So by default (``export.int8_float_ops: auto``) the int8 file keeps
those operators in float32, between a dequantize and a quantize that XNNPACK runs too; ``none``
gives the full-integer file that integer-only accelerators (Edge TPU, NPUs, microcontrollers)
need.
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


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


def undelegated_ops(model_bytes: bytes) -> collections.Counter[str]:
    """Operator name -> how many of them XNNPACK leaves to LiteRT's own kernels in this file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()  # applies the delegate
    # The interpreter lists every operator of the file, then one DELEGATE node per partition it
    # handed to XNNPACK (its boundary tensors). A partition's operators are those found walking
    # back from its outputs to its inputs.
    ops = interpreter._get_ops_details()
    partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): i for i, op in enumerate(ops) if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    delegated: set[int] = set()
    for partition in partitions:
        boundary = {int(t) for t in partition["inputs"]}
        pending = [int(t) for t in partition["outputs"]]
        while pending:
            tensor = pending.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in delegated:
                continue
            delegated.add(index)
            pending.extend(int(t) for t in ops[index]["inputs"] if t >= 0)
    return collections.Counter(
        op["op_name"] for i, op in enumerate(ops) if op["op_name"] != "DELEGATE" and i not in delegated
    )


# The input's uint8 -> int8 step: outside XNNPACK, but one cheap pass at the start.
_QUANTIZE_OPS = {"QUANTIZE", "DEQUANTIZE"}
_FLOAT_OP_ROUNDS = 3  # an operator kept in float32 can leave a neighbour XNNPACK then refuses


def convert_int8(model: keras.Model, calibration_images: Iterable[np.ndarray], float_ops: str = "auto") -> bytes:
    """calibration_images: float32 [1, H, W, C] arrays in [0, 1] from the train split.
    float_ops: "auto" keeps in float32 the operators XNNPACK runs in float32 but not in int8
    (found by converting both ways); "none" makes a full-integer file."""
    samples = list(calibration_images)

    def representative_dataset():
        for image in samples:
            yield [image.astype(np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        converter = _converter(model, Path(tmp) / "sm")
        in_float = set(undelegated_ops(converter.convert())) if float_ops == "auto" else set()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        data = converter.convert()
        if float_ops == "none":
            return data
        calibrated, kept = b"", set[str]()
        for _ in range(_FLOAT_OP_ROUNDS):
            slower = set(undelegated_ops(data)) - in_float - _QUANTIZE_OPS - kept
            if not slower:
                break
            if not calibrated:
                converter._experimental_calibrate_only = True  # the calibrated float model
                calibrated = converter.convert()
            kept |= slower
            data = _quantize_except(calibrated, sorted(kept))
        return data


def _quantize_except(calibrated: bytes, float_ops: list[str]) -> bytes:
    """The calibrated model quantized as ``convert_int8``'s converter quantizes it (uint8 input,
    float output), with the operators ``float_ops`` names left in float32. The converter has no
    option for it; TensorFlow's QuantizationDebugger makes its selectively quantized models
    with this call, but it cannot take a uint8 input."""
    from tensorflow.lite.python.convert import mlir_quantize

    return mlir_quantize(calibrated, input_data_type=tf.uint8, output_data_type=tf.float32, denylisted_ops=float_ops)
