"""Trivial baselines on the evaluated split: what a model must beat to be worth serving.

The majority-class predictor answers the class most frequent in the train split, as
scikit-learn's ``DummyClassifier(strategy="most_frequent")`` learns it (a tie goes to the
first class in sorted order); its accuracy on the evaluated split is the rate the gate's
default check compares with. ``stratified`` is the expected accuracy of guessing at random in
the train split's class proportions (``DummyClassifier(strategy="stratified")``), and chance
is 1 / classes.
"""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier


def trivial_baselines(train_counts: dict[str, int], classes: list[str], labels: np.ndarray) -> dict:
    """``{"majority": {"class", "accuracy", "train_share"}, "stratified", "chance", "learned_on"}``
    from the train split's images per class and the evaluated split's labels (class ids)."""
    counts = np.array([train_counts.get(name, 0) for name in classes])
    learned_on = "train"
    if not counts.sum():  # no train images (a stage rerun on odd data): learn from the split itself
        counts, learned_on = np.bincount(labels, minlength=len(classes)), "the evaluated split (no train images)"
    targets = np.repeat(np.arange(len(classes)), counts)
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(targets), 1)), targets)
    majority = int(dummy.predict(np.zeros((1, 1)))[0])
    prior = counts / counts.sum()
    share = np.bincount(labels, minlength=len(classes)) / max(len(labels), 1)
    return {
        "majority": {
            "class": classes[majority],
            "accuracy": float(np.mean(labels == majority)) if len(labels) else 0.0,
            "train_share": float(prior[majority]),
        },
        "stratified": float(prior @ share),
        "chance": 1.0 / len(classes),
        "learned_on": learned_on,
    }
