"""ONNX for users outside TensorFlow: Keras' own export (tf2onnx underneath), run with
onnxruntime. Takes [N, H, W, C] float images in [0, 1], like the Keras model and the float
TFLite file; needs ``pip install visionpipe[onnx]``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from visionpipe.pipeline.errors import UserError


def export_onnx(model: keras.Model, path: Path) -> None:
    model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that has run
    try:
        model.export(str(path), format="onnx", verbose=False)
    except ImportError as err:
        raise UserError(f"export.onnx needs tf2onnx and onnxruntime ({err}); pip install 'visionpipe[onnx]'") from None


class OnnxClassifier:
    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: images.astype(np.float32)})[0]
