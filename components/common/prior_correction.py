"""Prior correction for imbalanced single-label data: take the train split's class frequencies
back out of the model's decisions, as much as the val split says helps.

A classifier trained on a long tail learns the tail's prior: its probabilities lean toward the
frequent classes, and a rare class is chosen only when it is overwhelming. Post-hoc logit
adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) subtracts
``strength * log(prior)`` from each class's logit; at strength 1 the argmax is the Bayes
decision for balanced classes. The strength is fitted on val: the value on a grid that gives the
best balanced accuracy there, the smallest such value on ties, so balanced data (where nothing
helps) keeps 0, the model as trained. Export builds the offsets into every served model next to
the temperature (``models.temperature``), so what is served is what evaluate judged.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score

STRENGTHS = np.round(np.arange(0.0, 2.0001, 0.1), 1)  # 0 = no correction, 1 = the Bayes rule for balanced classes


def log_prior(train_counts: dict[str, int], classes: list[str]) -> np.ndarray:
    """Each class's log frequency in train, in class order; add-one smoothed so a class with no
    train image gets a finite (very low) prior instead of an infinite offset."""
    counts = np.array([train_counts.get(name, 0) for name in classes], dtype=np.float64) + 1.0
    return np.log(counts / counts.sum())


def fit_strength(
    log_probabilities: np.ndarray, labels: np.ndarray, prior: np.ndarray, given: float | None = None
) -> tuple[float, dict[float, float]]:
    """The strength on ``STRENGTHS`` with the best balanced accuracy of ``labels`` (the val split's)
    under ``log_probabilities - strength * prior`` (or the ``given`` one), and the balanced accuracy
    at each strength tried."""
    tried = (0.0, given) if given is not None else STRENGTHS
    scores = {
        float(s): float(balanced_accuracy_score(labels, (log_probabilities - s * prior).argmax(axis=1))) for s in tried
    }
    if given is not None:
        return float(given), scores
    best = max(scores.values())
    return min(s for s, score in scores.items() if score >= best - 1e-12), scores


def offsets(strength: float, prior: np.ndarray) -> list[float] | None:
    """What export adds to the served logits, or None when there is nothing to add."""
    return None if strength == 0.0 else [float(-strength * p) for p in prior]
