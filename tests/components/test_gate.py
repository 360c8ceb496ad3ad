"""The gate's default checks and verdicts, the trivial baselines, and how the report shows them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import balanced_accuracy_score

from visionpipe.components.evaluate import bootstrap, gate
from visionpipe.components.evaluate.config import EvaluateConfig, ThresholdConfig
from visionpipe.components.evaluate.metrics import classification_metrics
from visionpipe.components.evaluate.trivial import trivial_baselines
from visionpipe.config import load_config
from visionpipe.pipeline.artifacts import Blessing, Verdict
from visionpipe.pipeline.checks import Outcome
from visionpipe.pipeline.config import ConfigError
from visionpipe.report_render import RunReport, render_html, render_markdown


def evaluated(labels, predicted, train_counts, classes=None, split="test", resamples=1000) -> dict:
    """What evaluate computes for the gate from labels and predictions, without a model."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    classes = classes or [f"c{i}" for i in range(max(labels.max(), predicted.max()) + 1)]
    result = classification_metrics(labels, np.eye(len(classes))[predicted], classes, top_k=3)
    result["split"] = split
    result["intervals"] = bootstrap.confidence_intervals(labels, predicted, len(classes), resamples, seed=0)
    result["intervals"]["resamples"] = resamples
    result["trivial"] = trivial_baselines(dict(zip(classes, train_counts, strict=True)), classes, labels)
    result["calibration"] = {"ece_served": 0.05, "ece_before": 0.05, "temperature": 1.0, "fitted_on": "val"}
    result["slices"] = {"slices": [], "uniform": [], "overall": result["accuracy"]}
    result["most_confused"] = []
    return result


def judged(result, config=EvaluateConfig(), no_test_split=""):
    checks = gate.default_checks(result, config, no_test_split) + gate.absolute_checks(result, config)
    return {c.name: c for c in checks}, gate.blessing(checks, "uri")


MAJORITY = "accuracy vs always answering the majority class"


def test_majority_baseline_is_what_dummy_classifier_learns_from_train():
    classes = ["ant", "bee", "cat"]
    labels = np.array([0, 0, 1, 2, 2, 2])
    found = trivial_baselines({"ant": 5, "bee": 9, "cat": 2}, classes, labels)
    assert found["majority"] == {"class": "bee", "accuracy": pytest.approx(1 / 6), "train_share": 9 / 16}
    assert found["chance"] == pytest.approx(1 / 3)
    assert found["stratified"] == pytest.approx((5 * 2 + 9 * 1 + 2 * 3) / 16 / 6)
    # A tie goes where scikit-learn sends it: the first class.
    tie = trivial_baselines({"ant": 4, "bee": 4, "cat": 4}, classes, labels)
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((12, 1)), np.repeat([0, 1, 2], 4))
    assert tie["majority"]["class"] == classes[dummy.predict(np.zeros((1, 1)))[0]] == "ant"


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    rng = np.random.default_rng(0)
    labels = rng.choice(4, 300, p=[0.6, 0.3, 0.1, 0.0])
    predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 4, 300))
    result = classification_metrics(labels, np.eye(4)[predicted], list("abcd"), top_k=2)
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    whole = np.arange(300)[None]
    assert bootstrap.balanced_accuracy_scores(labels, predicted, whole, 4)[0] == pytest.approx(
        result["balanced_accuracy"]
    )


def test_a_model_that_answers_one_class_fails_and_says_which():
    labels = np.repeat([0, 1, 2], [40, 30, 30])
    result = evaluated(labels, np.zeros(100, int), train_counts=[120, 90, 90])
    checks, blessing = judged(result)
    assert checks[MAJORITY].outcome == Outcome.FAILED and checks[MAJORITY].threshold == 0.4
    assert "accuracy 0.4000 is no better than always answering 'c0'" in checks[MAJORITY].detail
    recall = checks["no class with recall 0"]
    assert recall.outcome == Outcome.FAILED and "c1 (0 of 30), c2 (0 of 30)" in recall.detail
    assert blessing["verdict"] == "NOT BLESSED" and not blessing["blessed"]
    # Answering a minority class is worse than the majority rate: failed all the same.
    minority = evaluated(labels, np.full(100, 2), train_counts=[120, 90, 90])
    assert judged(minority)[0][MAJORITY].outcome == Outcome.FAILED


def test_a_good_model_on_enough_images_is_blessed_with_every_threshold_not_set():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 150)
    predicted = np.where(rng.random(300) < 0.9, labels, 1 - labels)
    checks, blessing = judged(evaluated(labels, predicted, train_counts=[600, 600]))
    assert blessing["verdict"] == "BLESSED" and blessing["reasons"] == ["every check passed"]
    assert {name: c.outcome for name, c in checks.items() if c.outcome != Outcome.NOT_SET} == {
        MAJORITY: Outcome.PASSED,
        "no class with recall 0": Outcome.PASSED,
        "images per class in the evaluated split": Outcome.PASSED,
        "width of the accuracy's 95% interval": Outcome.PASSED,
        "scored on a held-out test split": Outcome.PASSED,
    }
    assert blessing["not_set"] == [
        "evaluate.thresholds.min_accuracy",
        "evaluate.thresholds.min_balanced_accuracy",
        "evaluate.thresholds.min_top_k_accuracy",
        "evaluate.thresholds.min_class_recall",
        "evaluate.thresholds.max_ece",
        "evaluate.thresholds.max_corruption_drop",
    ]
    # The log line names what was checked, so "BLESSED" never reads as "nothing was checked".
    assert gate.gate_note(blessing).startswith(
        f"gate: BLESSED (every check passed: {MAJORITY}; no class with recall 0; images per class in the "
        "evaluated split; width of the accuracy's 95% interval; scored on a held-out test split); not set: "
        "evaluate.thresholds min_accuracy, "
    )


@pytest.mark.parametrize(("correct", "verdict"), [(13, "NOT BLESSED"), (15, "INCONCLUSIVE")])
def test_the_issues_27_image_test_split_is_never_blessed(correct, verdict):
    # 27 carved test images of two classes (14/13), as in the issue: 0.48 (13 right) and 0.56 (15 right).
    labels = np.repeat([0, 1], [14, 13])
    predicted = labels.copy()
    predicted[: 27 - correct] = 1 - predicted[: 27 - correct]
    checks, blessing = judged(evaluated(labels, predicted, train_counts=[110, 108]))
    assert blessing["verdict"] == verdict
    width = checks["width of the accuracy's 95% interval"]
    assert width.outcome == Outcome.INCONCLUSIVE and width.value > 0.3  # about 0.37: far too wide to tell


def test_beating_the_majority_point_estimate_but_not_its_interval_is_inconclusive():
    labels = np.repeat([0, 1], [30, 30])
    predicted = labels.copy()
    predicted[:25] = 1 - predicted[:25]  # 35 of 60 right: 0.58 vs a majority rate of 0.5
    checks, blessing = judged(evaluated(labels, predicted, train_counts=[100, 100]))
    majority = checks[MAJORITY]
    assert majority.outcome == Outcome.INCONCLUSIVE and "reaches it" in majority.detail
    assert blessing["verdict"] == "INCONCLUSIVE" and majority.detail in blessing["reasons"]


def test_a_class_with_too_few_images_is_inconclusive_and_not_judged_on_recall():
    labels = np.concatenate([np.repeat([0, 1], 100), [2, 2, 2]])
    predicted = np.concatenate([np.repeat([0, 1], 100), [0, 0, 0]])  # class 2 never right, on 3 images
    checks, blessing = judged(evaluated(labels, predicted, train_counts=[400, 400, 12]))
    assert checks["no class with recall 0"].outcome == Outcome.PASSED  # c2 has too few images to judge
    images = checks["images per class in the evaluated split"]
    assert images.outcome == Outcome.INCONCLUSIVE and "c2 3" in images.detail
    assert blessing["verdict"] == "INCONCLUSIVE"
    relaxed = EvaluateConfig(min_images_per_class=3)
    assert judged(evaluated(labels, predicted, [400, 400, 12]), relaxed)[1]["verdict"] == "NOT BLESSED"


def test_scoring_val_is_at_best_inconclusive_and_says_why():
    labels = np.repeat([0, 1], 200)
    checks, blessing = judged(evaluated(labels, labels, [800, 800], split="val"), no_test_split="data too small")
    held_out = checks["scored on a held-out test split"]
    assert held_out.outcome == Outcome.INCONCLUSIVE and "scored on val (data too small)" in held_out.detail
    assert blessing["verdict"] == "INCONCLUSIVE"


def test_a_failed_check_outweighs_an_inconclusive_one_and_a_set_threshold_is_judged():
    labels = np.repeat([0, 1], [10, 10])
    checks, blessing = judged(
        evaluated(labels, labels, [40, 40]), EvaluateConfig(thresholds=ThresholdConfig(min_balanced_accuracy=1.01))
    )
    assert checks["width of the accuracy's 95% interval"].outcome == Outcome.PASSED  # 20 right of 20: width 0
    assert checks["balanced accuracy"].outcome == Outcome.FAILED
    assert blessing["verdict"] == "NOT BLESSED"
    small = evaluated(np.repeat([0, 1], [3, 3]), np.repeat([0, 1], [3, 3]), [40, 40])
    config = EvaluateConfig(thresholds=ThresholdConfig(min_accuracy=0.5))
    assert judged(small, config)[1]["verdict"] == "INCONCLUSIVE"  # 3 images a class
    config = EvaluateConfig(thresholds=ThresholdConfig(min_accuracy=1.01))
    assert judged(small, config)[1]["verdict"] == "NOT BLESSED"


def test_the_blessing_artifact_has_a_typed_verdict_and_export_refuses_inconclusive():
    inconclusive = Blessing("b", {"verdict": "INCONCLUSIVE", "blessed": False, "reasons": ["too few images"]})
    assert inconclusive.verdict is Verdict.INCONCLUSIVE and not inconclusive.blessed
    assert inconclusive.not_blessed_reason().startswith("the gate's verdict is INCONCLUSIVE")
    assert "too few images" in inconclusive.not_blessed_reason()
    assert Blessing("b", {"blessed": True}).verdict is Verdict.BLESSED  # written before verdicts
    assert Blessing("b", {"blessed": False, "reasons": ["x"]}).verdict is Verdict.NOT_BLESSED
    assert Blessing("b", {"verdict": "BLESSED", "blessed": True}).not_blessed_reason() is None
    assert Blessing("b", {"blessed": False, "reasons": ["x"]}).not_blessed_reason() == "the model is not blessed: x"


def test_thresholds_are_unset_by_default_and_the_default_checks_cannot_be_switched_off():
    config = load_config(None, [])
    assert dataclasses.astuple(config.evaluate.thresholds) == (None,) * 7 + ({},)
    set_one = load_config(None, ["evaluate.thresholds.min_accuracy=0.8", "evaluate.thresholds.max_ece=null"])
    assert set_one.evaluate.thresholds.min_accuracy == 0.8 and set_one.evaluate.thresholds.max_ece is None
    for override, message in (
        ("evaluate.max_interval_width=1.5", "evaluate.max_interval_width must be between 0.0 and 1.0"),
        ("evaluate.min_images_per_class=0", "evaluate.min_images_per_class must be at least 1"),
        ("data.split.max_test_share=1", "data.split.max_test_share must be between 0.0 and 0.9"),
        ("validate.min_train_images_per_class=0", "validate.min_train_images_per_class must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(None, [override])


def report_of(result, blessing, tmp_path) -> RunReport:
    return RunReport("run 1", "visionpipe run", tmp_path, result, blessing)


def test_report_md_shows_unset_thresholds_as_not_set_and_the_majority_rate(tmp_path):
    labels = np.repeat([0, 1, 2], [40, 30, 30])
    result = evaluated(labels, np.zeros(100, int), [120, 90, 90], classes=["cat", "dog", "eel"])
    blessing = judged(result)[1]
    markdown = render_markdown(report_of(result, blessing, tmp_path))
    assert "**Gate: NOT BLESSED**: accuracy 0.4000 is no better than always answering 'cat'" in markdown
    assert (
        "| always answering 'cat' | 0.4000 | the majority class: the most frequent in train (40% of it) |" in markdown
    )
    assert "| chance (1/3) | 0.3333 |  |" in markdown
    for name in ("accuracy", "balanced accuracy", "ECE", "accuracy drop under corruptions (strongest)"):
        assert any(
            line.startswith(f"| {name} |") and line.endswith("| not set | not set |") for line in markdown.splitlines()
        ), name
    assert "| recall of class 'dog' (the lowest) | 0.0000 | not set | not set |" in markdown
    assert "passed" not in [line.split("|")[-2].strip() for line in markdown.splitlines() if "not set" in line]
    html = render_html(report_of(result, blessing, tmp_path))
    assert "<p class='fail'><b>NOT BLESSED</b>" in html
    assert "<span class='skip'>not set</span>" in html and "<span class='pass'>not set</span>" not in html
    assert "always answering &#x27;cat&#x27;" in html or "always answering 'cat'" in html
