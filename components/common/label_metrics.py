"""Multi-label metrics: average precision per label, decision thresholds fitted on val, and what
the chosen thresholds give (scikit-learn does the maths).

Each label is a yes/no question with its own probability. Average precision (AP: the area under
a label's precision-recall curve, as PASCAL VOC and MS-COCO report it) ranks images by that
probability and needs no threshold; mAP is its mean over the labels (macro) or AP over every
(image, label) pair at once (micro). A label decided by a constant probability has an AP equal
to its prevalence (the share of images carrying it): that is the chance level the gate compares
with. A served decision needs a threshold per label: the one that maximises the label's F1 on
the val split, or the lowest that reaches a target precision there.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics

DEFAULT_THRESHOLD = 0.5  # for a label val cannot fit: no val image carries it


def average_precisions(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """AP per label; NaN for a label no image carries (its AP is undefined)."""
    return np.array(
        [
            metrics.average_precision_score(labels[:, j], probabilities[:, j]) if labels[:, j].any() else np.nan
            for j in range(labels.shape[1])
        ]
    )


def mean_ap(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro mAP over the labels some image carries."""
    return float(np.nanmean(average_precisions(labels, probabilities)))


def micro_map(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AP over every (image, label) pair at once."""
    return float(metrics.average_precision_score(labels, probabilities, average="micro"))


def fit_thresholds(
    labels: np.ndarray, probabilities: np.ndarray, target_precision: float | None, min_positives: int
) -> list[dict]:
    """Per label: the threshold, and how it was chosen. With ``target_precision`` None, the one
    with the highest F1 on these (val) images; else the lowest whose precision reaches the target
    (the F1 one when none does). The threshold sits halfway between the lowest score it accepts
    and the next lower score, which decides these images the same way and leaves room for new
    ones. A label carried by fewer than ``min_positives`` images keeps DEFAULT_THRESHOLD: a
    threshold fitted on a handful of images follows their noise."""
    fitted = []
    for j in range(labels.shape[1]):
        positives = int(labels[:, j].sum())
        if positives < max(min_positives, 1):
            rule = f"default: {positives} val images carry the label, fewer than evaluate.min_threshold_images"
            fitted.append({"threshold": DEFAULT_THRESHOLD, "rule": f"{rule} ({min_positives})"})
            continue
        precision, recall, thresholds = metrics.precision_recall_curve(labels[:, j], probabilities[:, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        rule = f"best val F1 {f1[best]:.3f}"
        if target_precision is not None:
            reaching = np.flatnonzero(precision >= target_precision)
            if len(reaching):
                best = int(reaching[0])  # thresholds ascend: the first reaching is the lowest
                rule = f"val precision {precision[best]:.3f} >= {target_precision} at recall {recall[best]:.3f}"
            else:
                rule += f" (no threshold reaches precision {target_precision})"
        below = thresholds[best - 1] if best > 0 else 0.0
        fitted.append({"threshold": float((thresholds[best] + below) / 2), "rule": rule})
    return fitted


def decisions_metrics(labels: np.ndarray, decided: np.ndarray, names: list[str]) -> dict:
    """What yes/no decisions give: precision/recall/F1 per label and averaged, subset accuracy
    (every label of an image right) and Hamming loss (the share of wrong decisions)."""
    precision, recall, f1, support = metrics.precision_recall_fscore_support(labels, decided, zero_division=0)
    averages = {
        average: dict(
            zip(
                ("precision", "recall", "f1"),
                map(
                    float,
                    metrics.precision_recall_fscore_support(labels, decided, average=average, zero_division=0)[:3],
                ),
                strict=False,
            )
        )
        for average in ("macro", "micro")
    }
    return {
        "per_label": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "averages": averages,
        "subset_accuracy": float(metrics.accuracy_score(labels, decided)),
        "hamming_loss": float(metrics.hamming_loss(labels, decided)),
    }


def map_interval(labels: np.ndarray, probabilities: np.ndarray, resamples: int, seed: int) -> list[float]:
    """Bootstrap 95% interval of macro mAP (images drawn with replacement, seeded)."""
    return _bootstrap(len(labels), resamples, seed, lambda draw: mean_ap(labels[draw], probabilities[draw]))


def map_difference_interval(
    labels: np.ndarray, candidate: np.ndarray, baseline: np.ndarray, resamples: int, seed: int
) -> list[float]:
    """Paired bootstrap 95% interval of (candidate mAP - baseline mAP), both on the same draws."""
    return _bootstrap(
        len(labels),
        resamples,
        seed,
        lambda draw: mean_ap(labels[draw], candidate[draw]) - mean_ap(labels[draw], baseline[draw]),
    )


def _bootstrap(images: int, resamples: int, seed: int, score) -> list[float]:
    rng = np.random.default_rng(seed)
    scores = [score(rng.integers(0, images, images)) for _ in range(resamples)]
    low, high = np.nanpercentile(scores, [2.5, 97.5])
    return [float(low), float(high)]


def label_calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> list[float]:
    """Expected calibration error of each label's probability: |frequency - probability| per
    equal-width bin, weighted by its images."""
    errors = []
    for j in range(labels.shape[1]):
        p, y = probabilities[:, j], labels[:, j]
        which = np.minimum((p * bins).astype(int), bins - 1)
        counts = np.bincount(which, minlength=bins)
        mean_p = np.bincount(which, weights=p, minlength=bins) / np.maximum(counts, 1)
        mean_y = np.bincount(which, weights=y, minlength=bins) / np.maximum(counts, 1)
        errors.append(float(np.sum(counts * np.abs(mean_y - mean_p)) / max(len(y), 1)))
    return errors
