"""The ``preprocessing`` and ``model`` sections: what the model sees and which registered model it is."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
    image_size: tuple[int, int] = (28, 28)  # height, width fed to the model
    channels: Literal[1, 3] = 1
    # How images of another size are fitted (see models/preprocessing.py and the README):
    # stretch, pad (keep aspect, pad), crop (keep aspect, centre-crop), center_crop (central
    # crop_fraction, ImageNet-style). Images already at image_size are never resized.
    resize_policy: Literal["stretch", "pad", "crop", "center_crop"] = "stretch"
    crop_fraction: float = 0.875  # center_crop only


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"  # a registered model (models/registry.py)
    # The model's own keyword arguments, checked against its builder's signature when the
    # config loads, e.g. {width: 32, dropout: 0.25} for small_cnn (README: models).
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    # none: random initialisation; imagenet: Keras' pretrained weights (models that offer
    # them); or a path to a weights file (.weights.h5 or .h5), layers that do not fit skipped.
    weights: str = "none"
