"""Multi-label metrics and gate: thresholds fitted on val, mAP against chance, labels never found."""

from __future__ import annotations

import numpy as np

from visionpipe.components.common import label_metrics as lm
from visionpipe.components.evaluate import label_gate
from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.components.evaluate.multi_label import scores
from visionpipe.pipeline.checks import Outcome


def test_thresholds_sit_between_the_scores_that_separate_the_labels():
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 1]] * 4)
    probabilities = np.array([[0.9, 0.2], [0.7, 0.1], [0.3, 0.8], [0.2, 0.3], [0.8, 0.6]] * 4)
    fitted = lm.fit_thresholds(labels, probabilities, target_precision=None, min_positives=2)
    # label 0: positives score 0.7-0.9, negatives at most 0.3 -> halfway, 0.5; label 1: 0.3 vs 0.6 -> 0.45
    assert [round(t["threshold"], 3) for t in fitted] == [0.5, 0.45]
    assert all("best val F1 1.000" in t["rule"] for t in fitted)
    few = lm.fit_thresholds(labels, probabilities, target_precision=None, min_positives=100)
    assert [t["threshold"] for t in few] == [lm.DEFAULT_THRESHOLD] * 2 and "fewer than" in few[0]["rule"]


def test_a_target_precision_takes_the_lowest_threshold_that_reaches_it():
    labels = np.array([[1], [0], [1], [0], [1], [1]])
    probabilities = np.array([[0.9], [0.8], [0.7], [0.4], [0.35], [0.1]])
    best_f1 = lm.fit_thresholds(labels, probabilities, None, 1)[0]
    exact = lm.fit_thresholds(labels, probabilities, 1.0, 1)[0]
    assert exact["threshold"] == (0.9 + 0.8) / 2 and "precision 1.000" in exact["rule"]
    assert best_f1["threshold"] < exact["threshold"]


def test_a_constant_score_is_chance_and_the_gate_fails_it():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 3)) < [0.2, 0.5, 0.3]).astype(int)
    constant = np.tile([0.5, 0.5, 0.5], (400, 1))
    thresholds = [{"threshold": 0.5, "rule": "test"}] * 3
    result = scores(labels, constant, thresholds, ["a", "b", "c"], EvaluateConfig(bootstrap_resamples=50), seed=0)
    result["split"] = "test"
    assert abs(result["map"] - result["chance_map"]) < 1e-9
    assert label_gate.chance_check(result).outcome is Outcome.FAILED
    good = np.clip(labels * 0.8 + rng.random((400, 3)) * 0.2, 0, 1)
    result = scores(labels, good, thresholds, ["a", "b", "c"], EvaluateConfig(bootstrap_resamples=50), seed=0)
    result["split"] = "test"
    assert result["map"] == 1.0 and label_gate.chance_check(result).outcome is Outcome.PASSED
    checks = label_gate.default_checks(result, EvaluateConfig(), "")
    assert all(c.outcome is Outcome.PASSED for c in checks), [str(c) for c in checks]


def test_a_label_never_found_at_its_threshold_fails_the_gate():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 1], [1, 1], [0, 1]] * 5)
    probabilities = np.where(labels == 1, 0.9, 0.1).astype(float)
    probabilities[:, 1] = 0.2  # label b is never above its threshold
    thresholds = [{"threshold": 0.5, "rule": "test"}] * 2
    result = scores(labels, probabilities, thresholds, ["a", "b"], EvaluateConfig(bootstrap_resamples=20), seed=0)
    check = label_gate.default_checks({**result, "split": "test"}, EvaluateConfig(), "")[1]
    assert (
        check.outcome is Outcome.FAILED
        and "never recognises 1 label(s)" in check.detail
        and "b (0 of 25)" in check.detail
    )
