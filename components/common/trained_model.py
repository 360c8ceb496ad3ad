"""Loads what the train stage wrote: the Keras model, its preprocessing spec and class names."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from visionpipe.models.config import ModelConfig
from visionpipe.models.layers import custom_layers
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.models.registry import check_args
from visionpipe.pipeline.artifacts import Model


def load_trained(model_dir: Path) -> tuple[keras.Model, PreprocessingSpec, list[str]]:
    custom_layers(keras)  # registered before the model file names them
    # Not compiled: scoring and export need no optimizer (and so no training-only classes).
    model = keras.models.load_model(model_dir / Model.KERAS, compile=False)
    spec = PreprocessingSpec.load(model_dir / Model.PREPROCESSING)
    classes = json.loads((model_dir / Model.CLASSES).read_text())
    return model, spec, classes


def trained_model_config(model_dir: Path) -> ModelConfig:
    """The model settings the train stage actually used (tuned values included)."""
    model = json.loads((model_dir / "params.json").read_text())["model"]
    return ModelConfig(name=model["name"], args=check_args(model["name"], model["args"]), weights=model["weights"])
