"""Runs a .tflite classifier with ai-edge-litert, quantising inputs as the model expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class TFLiteClassifier:
    def __init__(self, path: str | Path, num_threads: int | None = None):
        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch: int | None = None  # the batch size the interpreter is allocated for

    @property
    def input_dtype(self) -> np.dtype:
        return self._input["dtype"]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """images: float32 [N, H, W, C] in [0, 1] -> probabilities [N, classes]."""
        if self._batch != len(images):
            self._interpreter.resize_tensor_input(self._input["index"], [len(images), *images.shape[1:]])
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self._batch = len(images)
        self._interpreter.set_tensor(self._input["index"], self._quantize(images))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"]))

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return images.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if values.dtype == np.float32:
            return values
        scale, zero_point = self._output["quantization"]
        return (values.astype(np.float32) - zero_point) * scale
