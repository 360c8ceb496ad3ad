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
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CROSS_VALIDATED, TRAINED_MODEL = "cross-validated logistic regression", "the trained model"
# The inverse regularisation strength of the logistic regression. Confident learning counts an
# image as mislabelled when its held-out probability of another class reaches that class's mean
# self-confidence; unregularised fits push those means to ~1 on well-separated embeddings and
# miss confident flips (on planted 3% flips in separated clusters: recall 0.81 at C=1, 0.86 at 0.1).
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
    """The images whose given label confident learning finds unlikely, most likely wrong first."""
    if len(labels) < 2 or len(np.unique(labels)) < 2:
        return []  # one class (or one image): nothing to confuse it with
    with warnings.catch_warnings():  # cleanlab warns about classes absent from a split
        warnings.simplefilter("ignore")
        ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
        scores = get_label_quality_scores(labels, probabilities, method="self_confidence")
    return [
        LabelIssue(index=int(i), given=int(labels[i]), suggested=int(probabilities[i].argmax()), score=float(scores[i]))
        for i in ranked
    ]
