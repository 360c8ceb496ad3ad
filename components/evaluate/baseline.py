"""The baseline of the non-regression gate: the model being served, re-scored here.

"Being served" is what push last published for this model name: the version the ``stable``
label points at in ``<destination>/models.config`` when labels are in use, else the newest
version under ``<destination>/<name>/``. It is scored through its own serving signature on
the same encoded images as the candidate, so a model with another input size or
preprocessing is compared fairly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from visionpipe.components.common.scoring import predict_batches


@dataclasses.dataclass(frozen=True)
class ServedModel:
    version: int
    path: Path


def _stable_version(destination: Path, name: str) -> int | None:
    from visionpipe.serving import tf_serving_config

    config_file = destination / tf_serving_config.MODELS_CONFIG
    if not config_file.is_file():
        return None
    entry = tf_serving_config.entry_named(tf_serving_config.read_models_config(config_file), name)
    return entry.labels.get(tf_serving_config.STABLE) if entry is not None else None


def served_model(destination: Path, name: str) -> ServedModel | None:
    """The served version of ``name`` under ``destination``, or None before the first push."""
    from visionpipe.serving.tf_serving_config import versions_on_disk

    base = destination / name
    versions = versions_on_disk(base)
    if not versions:
        return None
    stable = _stable_version(destination, name)
    version = stable if stable in versions else versions[-1]
    return ServedModel(version, base / str(version))


def score_served(served: ServedModel, encoded_batches, progress=None) -> np.ndarray:
    """Probabilities of the served model for (encoded image bytes, labels) batches."""
    from visionpipe.serving.served_signature import load_signature, served_probabilities

    serve = load_signature(served.path)
    _, probabilities = predict_batches(
        encoded_batches, lambda image_bytes: served_probabilities(serve, image_bytes), False, progress
    )
    return probabilities
