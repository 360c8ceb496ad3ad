"""Bootstrap 95% intervals: how much a score could move on another draw of the same size.

Each resample draws the split's images with replacement (seeded); the interval is the 2.5th
to 97.5th percentile of the score over the resamples. A paired bootstrap (the same draws for
two models' predictions) gives the interval of their difference, which the baseline gate uses.

The draws come in chunks of about ``CHUNK_DRAWS`` indices: all 1,000 resamples of a
100,000-image split at once would be an 800 MB index matrix, and its gathered labels as much
again. Chunks take the seeded stream in the same order, so the intervals do not depend on the
chunk size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

CHUNK_DRAWS = 2**22  # indices per chunk: 32 MB of int64


def _resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(rows, n) blocks of resample indices, ``resamples`` rows in all."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_DRAWS // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def _per_resample(n: int, resamples: int, seed: int, *scorers) -> list[np.ndarray]:
    """Each scorer (resample indices -> scores) over every resample, the resamples drawn once,
    chunk by chunk, for all of them."""
    parts: list[list[np.ndarray]] = [[] for _ in scorers]
    for block in _resample_indices(n, resamples, seed):
        for part, scorer in zip(parts, scorers, strict=True):
            part.append(scorer(block))
    return [np.concatenate(part) for part in parts]


def accuracy_scores(labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return (labels == predicted)[indices].mean(axis=1)


def macro_f1_scores(labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Macro F1 of each resample, from its confusion counts (F1 = 2TP / (2TP + FP + FN))."""
    scores = np.empty(len(indices))
    for i, draw in enumerate(indices):
        true, pred = labels[draw], predicted[draw]
        tp = np.bincount(true[true == pred], minlength=num_classes)
        actual = np.bincount(true, minlength=num_classes)
        claimed = np.bincount(pred, minlength=num_classes)
        denominator = actual + claimed
        scores[i] = np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0))
    return scores


def balanced_accuracy_scores(
    labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray, num_classes: int
) -> np.ndarray:
    """Balanced accuracy of each resample: the mean recall of the classes it holds."""
    scores = np.empty(len(indices))
    for i, draw in enumerate(indices):
        true, pred = labels[draw], predicted[draw]
        actual = np.bincount(true, minlength=num_classes)
        hits = np.bincount(true[true == pred], minlength=num_classes)
        present = actual > 0
        scores[i] = np.mean(hits[present] / actual[present])
    return scores


SCORES = {
    "accuracy": lambda labels, predicted, indices, num_classes: accuracy_scores(labels, predicted, indices),
    "macro_f1": macro_f1_scores,
    "balanced_accuracy": balanced_accuracy_scores,
}


def interval(scores: np.ndarray) -> list[float]:
    low, high = np.percentile(scores, [2.5, 97.5])
    return [float(low), float(high)]


def confidence_intervals(
    labels: np.ndarray, predicted: np.ndarray, num_classes: int, resamples: int, seed: int
) -> dict[str, list[float]]:
    """metric -> [low, high] for accuracy, macro F1 and balanced accuracy."""
    scorers = [functools.partial(score, labels, predicted, num_classes=num_classes) for score in SCORES.values()]
    scores = _per_resample(len(labels), resamples, seed, *scorers)
    return {name: interval(found) for name, found in zip(SCORES, scores, strict=True)}


def difference_interval(
    metric: str,
    labels: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray,
    num_classes: int,
    resamples: int,
    seed: int,
) -> list[float]:
    """[low, high] of (candidate - baseline) for ``metric``, both scored on the same draws."""
    score = SCORES[metric]
    # Both models are scored on the same draws: a paired bootstrap.
    scored, base = _per_resample(
        len(labels),
        resamples,
        seed,
        functools.partial(score, labels, candidate, num_classes=num_classes),
        functools.partial(score, labels, baseline, num_classes=num_classes),
    )
    return interval(scored - base)
