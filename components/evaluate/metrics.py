"""Classification metrics from labels and predicted probabilities (scikit-learn does the maths)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix; top-k
    accuracy only where k < the number of classes (with two classes top-2 is always 1)."""
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(classes)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=ids, zero_division=0
    )
    result = {
        "examples": int(len(labels)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=ids).tolist(),
        "classes": classes,
    }
    if top_k < len(classes):
        result["top_k"] = top_k
        result["top_k_accuracy"] = float(metrics.top_k_accuracy_score(labels, probabilities, k=top_k, labels=ids))
    return result


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))
