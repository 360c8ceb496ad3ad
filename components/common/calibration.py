"""Calibration: how far confidence is from accuracy, and a temperature that closes the gap.

Expected calibration error (ECE) bins predictions by their top probability and averages
|accuracy - confidence| over the bins, weighted by their images. Temperature scaling divides
the logits by one number T fitted on the validation split (minimum negative log-likelihood);
T > 1 softens an over-confident model. It never changes which class wins, so accuracy is
untouched. Our models end in a softmax, so the logits are log-probabilities up to a constant
per image, which softmax ignores: ``softmax(log p / T)`` here equals ``softmax(z / T)`` in
the exported model (``models.temperature``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

_FLOOR = 1e-12  # log(0) guard: a probability the float32 softmax rounded to zero


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probabilities, _FLOOR))


def with_temperature(
    probabilities: np.ndarray, temperature: float, logit_offsets: list[float] | None = None
) -> np.ndarray:
    """softmax(log p / temperature [+ logit_offsets]): what the exported model serves
    (``models.temperature``); the offsets are a prior correction's (``prior_correction.py``)."""
    logits = log_probabilities(probabilities) / temperature
    return special.softmax(logits if logit_offsets is None else logits + np.asarray(logit_offsets), axis=1)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    """ECE and the reliability diagram's bins (confidence, accuracy, images per bin)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Equal-width bins over (0, 1]; a confidence of exactly 1 falls in the last bin.
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / np.maximum(counts, 1)
    mean_accuracy = np.bincount(which, weights=correct, minlength=bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts * np.abs(mean_accuracy - mean_confidence)) / max(len(labels), 1))
    return {
        "ece": ece,
        "bins": [
            {"confidence": float(c), "accuracy": float(a), "images": int(n)}
            for c, a, n in zip(mean_confidence, mean_accuracy, counts, strict=True)
        ],
    }


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], _FLOOR))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] with the least negative log-likelihood of the labels, searched on
    log T (the likelihood is smooth and unimodal there)."""
    logits = np.log(np.maximum(probabilities, _FLOOR))

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        return float(np.mean(special.logsumexp(scaled, axis=1) - scaled[np.arange(len(labels)), labels]))

    found = optimize.minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))
