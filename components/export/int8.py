"""int8 TFLite conversion, for the CPU runtime phones and this machine use.

XNNPACK, the CPU delegate LiteRT applies by default (on phones and here), runs some operators
only in float32: HARD_SWISH (MobileNetV3), the layer norm and attention products of a ViT,
GELU. In a full-integer file they fall back to LiteRT's own kernels, and each one cuts the
graph into another delegate partition: MobileNetV3-Small's int8 file ran 2.5x slower than its
float file (BENCHMARKS.md). So by default (``export.int8_float_ops: auto``) the int8 file keeps
those operators in float32, between a dequantize and a quantize that XNNPACK runs too; ``none``
gives the full-integer file that integer-only accelerators (Edge TPU, NPUs, microcontrollers)
need.

``auto`` also keeps in float32 the convolutions that read the image itself (at most 4 input
channels) and the scaling before them: LiteRT's profiler timed MobileNetV3-Small's int8 stem
convolution (3 input channels) at 3.2x its float32 time on an AVX-512 VNNI CPU, and the uint8
input's quantize step ran outside XNNPACK; kept in float32, the input dequantizes inside
XNNPACK and the int8 file runs 1.2x faster than the float32 file instead of equal
(BENCHMARKS.md, ``benchmarks/tflite_op_profile.py``).

No Keras here: the export stage (Keras 3) and the tfmot bridge (legacy Keras) both convert
through ``convert``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import tensorflow as tf


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


def convert(converter: tf.lite.TFLiteConverter, representative_dataset: Callable, float_ops: str = "auto") -> bytes:
    """The int8 file of a float converter (uint8 input, float output, calibrated on
    ``representative_dataset``). float_ops: "auto" keeps in float32 the operators XNNPACK runs in
    float32 but not in int8 (found by converting both ways) and the operators reading the image
    (``image_operators``); "none" makes a full-integer file."""
    in_float = set(undelegated_ops(converter.convert())) if float_ops == "auto" else set()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    data = converter.convert()
    if float_ops == "none":
        return data
    converter._experimental_calibrate_only = True  # the calibrated float model
    calibrated = converter.convert()
    image_nodes, kept = image_operators(calibrated), set[str]()
    if image_nodes:
        data = _quantize_except(calibrated, [], image_nodes)
    for _ in range(_FLOAT_OP_ROUNDS):
        slower = set(undelegated_ops(data)) - in_float - _QUANTIZE_OPS - kept
        if not slower:
            break
        kept |= slower
        data = _quantize_except(calibrated, sorted(kept), image_nodes)
    return data


# An image has at most 4 channels (RGBA); in every registered model the later convolutions read more.
_IMAGE_CHANNELS = 4


def image_operators(model_bytes: bytes) -> list[str]:
    """The node names (output tensors) of the file's convolutions that read at most 4 channels
    (those reading the image) and of the operators between the file's input and them (the
    scaling to the network's input range): kept in float32, the uint8 input dequantizes inside
    XNNPACK, instead of a quantize step outside it."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    producer = {int(t): op for op in ops for t in op["outputs"]}
    pending = [
        op for op in ops if op["op_name"] == "CONV_2D" and tensors[op["inputs"][0]]["shape"][-1] <= _IMAGE_CHANNELS
    ]
    names: list[str] = []
    while pending:
        op = pending.pop()
        name = tensors[op["outputs"][0]]["name"]
        if name in names:
            continue
        names.append(name)
        # Back towards the input, through image-shaped tensors only.
        pending += [
            producer[int(t)]
            for t in op["inputs"]
            if int(t) in producer and tensors[int(t)]["shape"][-1] <= _IMAGE_CHANNELS
        ]
    return names


def _quantize_except(calibrated: bytes, float_ops: list[str], float_nodes: list[str]) -> bytes:
    """The calibrated model quantized as ``convert_int8``'s converter quantizes it (uint8 input,
    float output), with the operators ``float_ops`` names and the nodes ``float_nodes`` names
    left in float32. The converter has no option for it; TensorFlow's QuantizationDebugger makes
    its selectively quantized models with this call, but it cannot take a uint8 input."""
    from tensorflow.lite.python.convert import mlir_quantize

    return mlir_quantize(
        calibrated,
        input_data_type=tf.uint8,
        output_data_type=tf.float32,
        denylisted_ops=float_ops,
        denylisted_nodes=float_nodes,
    )
