"""The int8 file keeps in float32 what XNNPACK cannot run in int8 (``export.int8_float_ops:
auto``), so every operator runs inside the delegate, and the convolutions reading the image;
``none`` stays full-integer. Checked on the file LiteRT loads, not on the converter's settings."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from visionpipe.components.export import int8, tflite
from visionpipe.serving.tflite_runner import TFLiteClassifier


def hard_swish_model() -> keras.Model:
    """A MobileNetV3-style block: the activation XNNPACK takes only in float32, after the scaling
    to [-1, 1] that keras.applications' networks start with."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((24, 24, 3)), keras.layers.Rescaling(2.0, offset=-1.0),
         keras.layers.Conv2D(8, 3, strides=2), keras.layers.Activation("hard_swish"),
         keras.layers.DepthwiseConv2D(3, padding="same"), keras.layers.Conv2D(8, 1),
         keras.layers.Activation("hard_swish"), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    model = hard_swish_model()
    images = [np.random.default_rng(i).random((1, 24, 24, 3), np.float32) for i in range(8)]
    folder = tmp_path_factory.mktemp("int8")
    made = {
        "float": tflite.convert_float(model),
        "none": tflite.convert_int8(model, images, "none"),
        "auto": tflite.convert_int8(model, images),
    }
    for name, data in made.items():
        (folder / f"{name}.tflite").write_bytes(data)
    return model, folder, made


def test_a_full_integer_file_leaves_hard_swish_outside_xnnpack(files):
    _, _, made = files
    assert int8.undelegated_ops(made["float"]) == {}
    assert int8.undelegated_ops(made["none"])["HARD_SWISH"] == 2
    interpreter = Interpreter(model_content=made["none"])
    dtype = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert [dtype[op["outputs"][0]] for op in convolutions] == [np.int8] * 3


def test_auto_keeps_hard_swish_in_float_so_xnnpack_runs_every_operator(files):
    model, folder, made = files
    # Nothing outside XNNPACK, not even the uint8 input's step: it dequantizes (in XNNPACK) into
    # the float32 scaling and convolution that read the image.
    assert dict(int8.undelegated_ops(made["auto"])) == {}
    interpreter = Interpreter(model_path=str(folder / "auto.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8  # still the int8 file's contract
    interpreter.allocate_tensors()
    dtype = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    # The convolution reading the image (3 channels) stays float32 too: XNNPACK's int8 kernel is
    # slower than its float32 one there (BENCHMARKS.md); the others are int8.
    assert [dtype[op["outputs"][0]] for op in convolutions] == [np.float32, np.int8, np.int8]
    first = interpreter._get_ops_details()[0]
    assert first["op_name"] == "DEQUANTIZE" and dtype[first["outputs"][0]] == np.float32
    swishes = [op for op in interpreter._get_ops_details() if op["op_name"] == "HARD_SWISH"]
    assert len(swishes) == 2 and all(dtype[op["outputs"][0]] == np.float32 for op in swishes)
    images = np.random.default_rng(9).random((16, 24, 24, 3), np.float32)
    probabilities = TFLiteClassifier(folder / "auto.tflite", 1).predict(images)
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=0.03)


def test_auto_moves_the_final_softmax_and_the_inputs_step_into_xnnpack():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    images = [np.random.default_rng(i).random((1, 16, 16, 3), np.float32) for i in range(4)]
    full = int8.undelegated_ops(tflite.convert_int8(model, images, "none"))
    assert full - int8.undelegated_ops(tflite.convert_int8(model, images)) == {"SOFTMAX": 1, "QUANTIZE": 1}
