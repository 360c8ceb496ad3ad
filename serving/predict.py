"""Top-k predictions for image files from a SavedModel (TF Serving layout) or a .tflite file.

Both paths use the exported artifacts only, as a deployment would: the SavedModel's
``serving_default`` signature decodes the bytes itself; the TFLite model gets images from the
shared preprocessing module with the spec and labels the export wrote beside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from visionpipe.data.images import BadImage, check_image
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.errors import UserError
from visionpipe.serving.client import PredictResult
from visionpipe.serving.signature import CLASSES, IMAGE_INPUT, PROBABILITIES, THRESHOLDS


@dataclasses.dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]
    labels: list[str] | None = None  # a multi-label model's labels at or above their thresholds


def read_image(path: Path) -> bytes:
    """File bytes as JPEG/PNG (other formats are re-encoded the way ingest does)."""
    try:
        # Odd images become RGB PNG; the model decodes them to its own channel count.
        return check_image(path.read_bytes(), max_pixels=200_000_000, channels=3).data
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except BadImage as err:
        raise UserError(f"{path} is not a usable image: {err}") from None


def find_saved_model(path: Path) -> Path:
    """Accepts a version dir, a TF Serving model base path, or an export artifact dir."""
    if (path / "saved_model.pb").is_file():
        return path
    candidates = [p.parent for p in path.glob("saved_model.pb")] + [p.parent for p in path.glob("*/saved_model.pb")]
    candidates += [p.parent for p in path.glob("serving/*/*/saved_model.pb")]
    numbered = [c for c in candidates if c.name.isdigit()]
    if not numbered:
        raise UserError(
            f"no SavedModel found at {path}; pass a .tflite file, a SavedModel directory, "
            "a TF Serving model base path, or an export artifact directory"
        )
    return max(numbered, key=lambda c: int(c.name))


def predict(model_path: Path, images: list[Path], top_k: int = 3) -> list[Prediction]:
    data = [read_image(p) for p in images]
    if model_path.suffix == ".tflite":
        result = _tflite_probabilities(model_path, data)
    else:
        result = _saved_model_probabilities(find_saved_model(model_path), data)
    labels = result.above_thresholds()
    return [
        Prediction(str(path), top, labels[i] if labels is not None else None)
        for i, (path, top) in enumerate(zip(images, result.top(top_k), strict=True))
    ]


def _saved_model_probabilities(path: Path, data: list[bytes]) -> PredictResult:
    import tensorflow as tf

    from visionpipe.serving.served_signature import load_signature

    out = load_signature(path)(**{IMAGE_INPUT: tf.constant(data)})
    classes = [c.decode() for c in out[CLASSES].numpy()[0]]
    thresholds = out[THRESHOLDS].numpy()[0] if THRESHOLDS in out else None
    return PredictResult(out[PROBABILITIES].numpy(), classes, thresholds)


def _tflite_probabilities(path: Path, data: list[bytes]) -> PredictResult:
    import tensorflow as tf

    from visionpipe.models.preprocessing import PreprocessingSpec, load_image
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    spec_path, labels_path = path.with_name(ExportedModel.PREPROCESSING), path.with_name(ExportedModel.LABELS)
    for needed in (spec_path, labels_path):
        if not needed.is_file():
            raise UserError(f"{needed} is missing; the export stage writes it beside the .tflite file")
    spec = PreprocessingSpec.load(spec_path)
    images = np.stack([load_image(tf.constant(d), spec).numpy() for d in data])
    thresholds_path = path.with_name(ExportedModel.THRESHOLDS)  # written for multi-label models only
    thresholds = np.array(json.loads(thresholds_path.read_text())) if thresholds_path.is_file() else None
    return PredictResult(TFLiteClassifier(path).predict(images), labels_path.read_text().split("\n")[:-1], thresholds)
