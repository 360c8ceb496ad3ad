"""Likely label errors by confident learning (cleanlab, Northcutt et al., JAIR 2021).

Confident learning needs out-of-sample predicted probabilities. For the train split the trained
model's own are not: it has fitted those very labels, mistakes included. So, as cleanlab
documents, a cheap classifier (logistic regression) is cross-validated on the embeddings and
each train image is scored by the fold that did not see it. The val and test splits were never
trained on, so the trained model's own probabilities score them (``checked_by`` says which).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from cleanlab.count import compute_confident_joint, get_confident_thresholds
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CROSS_VALIDATED, TRAINED_MODEL = "cross-validated logistic regression", "the trained model"
# Confident learning counts an image labelled i as confidently of class j when p_j reaches j's
# threshold: the mean p_j of the images labelled j. A confident model on a small split drives
# that mean to ~0.998, so a green photo filed as blue that the model calls green at 0.993 was
# not counted, and not flagged (seen on the e2e folder). Capped, a held-out p_j of at least the
# cap always counts. The cap trades precision for recall on clean data: on the 4,000 train
# images of the MNIST sample (few real errors) 10 were flagged uncapped, 19 at 0.9, 40 at 0.7,
# 68 at 0.5; on 620 Caltech-101 photos 0, 0, 5 and 12.
MAX_THRESHOLD = 0.7
# The inverse regularisation strength of the logistic regression: some regularisation keeps the
# held-out probabilities from saturating on a few hundred well-separated embeddings.
REGULARIZATION = 0.1


@dataclasses.dataclass(frozen=True)
class LabelIssue:
    index: int  # into the arrays the issues were found in
    given: int
    suggested: int
    score: float  # cleanlab's label quality (self-confidence): low = likely wrong


def out_of_sample_probabilities(
    embeddings: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int
) -> tuple[np.ndarray, int]:
    """(probabilities [N, classes] each from a model that did not train on that image, the
    folds used): ``folds``, fewer when the smallest class present has fewer images (at least 2).
    Raises ValueError when a class has a single image (it cannot be held out and learnt)."""
    present, counts = np.unique(labels, return_counts=True)
    used = min(folds, int(counts.min()))
    if used < 2:
        smallest = int(present[counts.argmin()])
        raise ValueError(f"class id {smallest} has a single train image: too few to cross-validate")
    probabilities = np.zeros((len(labels), num_classes), np.float32)
    splitter = StratifiedKFold(n_splits=used, shuffle=True, random_state=seed)
    for fit_rows, held_out in splitter.split(embeddings, labels):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=REGULARIZATION))
        with warnings.catch_warnings():  # an unconverged fit still ranks; its warning is noise here
            warnings.simplefilter("ignore")
            classifier.fit(embeddings[fit_rows], labels[fit_rows])
        fold_classes = classifier.classes_
        probabilities[np.ix_(held_out, fold_classes)] = classifier.predict_proba(embeddings[held_out])
    return probabilities, used


def label_issues(labels: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """The images whose given label confident learning finds unlikely, most likely wrong first
    (cleanlab's find_label_issues, per-class thresholds capped at MAX_THRESHOLD)."""
    if len(labels) < 2 or len(np.unique(labels)) < 2:
        return []  # one class (or one image): nothing to confuse it with
    with warnings.catch_warnings():  # cleanlab warns about classes absent from a split
        warnings.simplefilter("ignore")
        thresholds = np.minimum(get_confident_thresholds(labels, probabilities), MAX_THRESHOLD)
        joint = compute_confident_joint(labels, probabilities, thresholds=thresholds)
        ranked = find_label_issues(
            labels, probabilities, confident_joint=joint, return_indices_ranked_by="self_confidence"
        )
        scores = get_label_quality_scores(labels, probabilities, method="self_confidence")
    return [
        LabelIssue(index=int(i), given=int(labels[i]), suggested=int(probabilities[i].argmax()), score=float(scores[i]))
        for i in ranked
    ]
