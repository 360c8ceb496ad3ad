"""The export table says, per TFLite file, whether the Task Library's ImageClassifier (what
Android and iOS apps load) runs it, with its own reason where not: tried, not assumed."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from visionpipe.components.export import tflite
from visionpipe.components.export.gates import table
from visionpipe.components.export.tflite_metadata import embed, metadata_python, task_library_verdict


def tiny_file(path, channels: int, int8: bool = False):
    model = keras.Sequential(
        [keras.Input((16, 16, channels)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    images = [np.random.default_rng(i).random((1, 16, 16, channels), np.float32) for i in range(4)]
    path.write_bytes(tflite.convert_int8(model, images) if int8 else tflite.convert_float(model))
    return path


def test_a_grayscale_file_is_marked_as_one_the_task_library_cannot_run(tmp_path):
    python = metadata_python("auto")
    assert python is not None, "make install sets up .venv-tflite-support"
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    probe = tmp_path / "probe.png"
    Image.new("RGB", (16, 16), (128, 128, 128)).save(probe)
    verdicts = {}
    for name, channels, int8 in (("rgb_float", 3, False), ("rgb_int8", 3, True), ("gray_float", 1, False)):
        path = tiny_file(tmp_path / f"{name}.tflite", channels, int8)
        embed(python, path, labels)
        verdicts[name] = task_library_verdict(python, path, probe)
    assert verdicts["rgb_float"] == verdicts["rgb_int8"] == "yes"
    assert verdicts["gray_float"].startswith("no: ") and "x 3" in verdicts["gray_float"], verdicts
    lines = table({"tflite_float": {"accuracy": 0.9, "task_library": verdicts["gray_float"]}}, "test").splitlines()
    assert f"| {verdicts['gray_float']} |" in lines[2] and "Task Library" in lines[0]


@pytest.mark.parametrize(("row", "cell"), [({"accuracy": 0.9}, "-"), ({"accuracy": 0.9, "task_library": "yes"}, "yes")])
def test_the_table_says_dash_where_it_was_not_tried(row, cell):
    header, _, line = (cells.split(" | ") for cells in table({"tflite_int8": row}, "test").splitlines())
    assert line[header.index("Task Library")] == cell
