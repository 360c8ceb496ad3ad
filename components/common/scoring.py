"""One pass over a split's batches through any runtime: Keras, a SavedModel signature, TFLite."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def predict_batches(
    batches: Iterable[tuple[Any, Any]], predict: Callable[[Any], np.ndarray], one_hot: bool, progress: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) batches -> (label ids, probabilities), reading each batch once;
    ``progress`` (a ``pipeline.output`` tracker) advances by each batch's images."""
    labels, probabilities = [], []
    for inputs, batch_labels in batches:
        probabilities.append(np.asarray(predict(inputs)))
        batch_labels = np.asarray(batch_labels)  # a tensor or an array
        labels.append(batch_labels.argmax(axis=1) if one_hot else batch_labels)
        if progress is not None:
            progress.advance(len(batch_labels))
    return np.concatenate(labels), np.concatenate(probabilities)


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))
