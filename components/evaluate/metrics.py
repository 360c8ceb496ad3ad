"""Classification metrics from labels and predicted probabilities (scikit-learn does the maths)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy; balanced accuracy (the mean recall of the classes present, scikit-learn's
    balanced_accuracy_score); per-class precision/recall/F1 with their macro, micro and
    support-weighted averages; the confusion matrix; one-vs-rest ROC-AUC and PR-AUC (average precision) per
    class and macro-averaged over the classes present; top-k accuracy only where k < the
    number of classes (with two classes top-2 is always 1)."""
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(classes)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=ids, zero_division=0
    )
    roc_auc, pr_auc = _one_vs_rest_auc(labels, probabilities, len(classes))
    result = {
        "examples": int(len(labels)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "balanced_accuracy": float(recall[support > 0].mean()) if support.any() else 0.0,
        "macro_f1": float(f1.mean()),
        "averages": {
            average: dict(
                zip(
                    ("precision", "recall", "f1"),
                    (
                        float(v)
                        for v in metrics.precision_recall_fscore_support(
                            labels, predicted, labels=ids, average=average, zero_division=0
                        )[:3]
                    ),
                    strict=True,
                )
            )
            for average in ("macro", "micro", "weighted")
        },
        "per_class": {
            name: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
                "roc_auc": roc,
                "pr_auc": pr,
            }
            for name, p, r, f, s, roc, pr in zip(classes, precision, recall, f1, support, roc_auc, pr_auc, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=ids).tolist(),
        "classes": classes,
    }
    defined = [v for v in roc_auc if v is not None]
    if defined:
        result["macro_roc_auc"] = float(np.mean(defined))
        result["macro_pr_auc"] = float(np.mean([v for v in pr_auc if v is not None]))
    if top_k < len(classes):
        result["top_k"] = top_k
        result["top_k_accuracy"] = float(metrics.top_k_accuracy_score(labels, probabilities, k=top_k, labels=ids))
    return result


def _one_vs_rest_auc(labels: np.ndarray, probabilities: np.ndarray, num_classes: int):
    """Per class: ROC-AUC and average precision of "this class vs the rest", None for a class
    absent from the split (neither is defined without positives)."""
    roc: list[float | None] = []
    pr: list[float | None] = []
    for c in range(num_classes):
        positive = labels == c
        if positive.all() or not positive.any():
            roc.append(None)
            pr.append(None)
            continue
        roc.append(float(metrics.roc_auc_score(positive, probabilities[:, c])))
        pr.append(float(metrics.average_precision_score(positive, probabilities[:, c])))
    return roc, pr


def most_confused_pairs(confusion: list[list[int]], classes: list[str], most: int = 10) -> list[dict]:
    """The off-diagonal cells with the most images: (true class, predicted class, count, share
    of the true class's images)."""
    matrix = np.asarray(confusion)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None)[:most]
    pairs = []
    for flat in order:
        true, predicted = np.unravel_index(flat, off.shape)
        if off[true, predicted] == 0:
            break
        pairs.append(
            {
                "true": classes[true],
                "predicted": classes[predicted],
                "images": int(off[true, predicted]),
                "share_of_true_class": float(off[true, predicted] / max(matrix[true].sum(), 1)),
            }
        )
    return pairs
