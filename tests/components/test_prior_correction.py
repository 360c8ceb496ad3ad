"""Prior correction (evaluate.prior_correction): the strength fitted on val, the offsets it
serves, and the Keras model export builds them into."""

import keras
import numpy as np
import pytest

from visionpipe.components.common import calibration, prior_correction
from visionpipe.components.export.executor import served_model
from visionpipe.models.classifier import build_classifier
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec

TRAIN_COUNTS = {"common": 900, "middle": 90, "rare": 10}
CLASSES = list(TRAIN_COUNTS)


def _scores(prior_weight: float, images_per_class: int = 200, seed: int = 0):
    """Balanced labels; log-probabilities = a noisy per-class signal + ``prior_weight`` x the train
    log prior, i.e. a model that learnt the long tail's prior to that degree."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), images_per_class)
    signal = 2.0 * np.eye(len(CLASSES))[labels] + rng.normal(0, 1.0, (len(labels), len(CLASSES)))
    logits = signal + prior_weight * prior_correction.log_prior(TRAIN_COUNTS, CLASSES)
    return labels, calibration.log_probabilities(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))


def test_a_model_that_learnt_the_long_tail_prior_gets_it_taken_out_and_the_rare_class_back():
    labels, log_p = _scores(prior_weight=1.0)
    prior = prior_correction.log_prior(TRAIN_COUNTS, CLASSES)
    strength, tried = prior_correction.fit_strength(log_p, labels, prior)
    assert 0.6 <= strength <= 1.4  # the prior the model learnt, found back
    assert tried[strength] > tried[0.0] + 0.15
    rare_recall = lambda s: ((log_p - s * prior).argmax(1)[labels == 2] == 2).mean()  # noqa: E731
    assert rare_recall(0.0) < 0.2 < 0.5 < rare_recall(strength)


def test_a_model_without_a_prior_to_take_out_keeps_its_decisions():
    labels, log_p = _scores(prior_weight=0.0)
    strength, tried = prior_correction.fit_strength(log_p, labels, prior_correction.log_prior(TRAIN_COUNTS, CLASSES))
    assert strength <= 0.2 and tried[strength] - tried[0.0] < 0.02
    balanced = {c: 100 for c in CLASSES}
    assert prior_correction.fit_strength(log_p, labels, prior_correction.log_prior(balanced, CLASSES))[0] == 0.0
    assert prior_correction.offsets(0.0, prior_correction.log_prior(balanced, CLASSES)) is None


def test_a_class_without_train_images_gets_a_finite_offset():
    prior = prior_correction.log_prior({"common": 50, "middle": 5}, CLASSES)
    assert np.isfinite(prior).all() and prior[2] < prior[1] < prior[0]


def test_the_served_keras_model_adds_the_offsets_after_the_temperature():
    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec(16, 16, 3, "pad", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    trained = build_classifier(spec, 3, ModelConfig(name="small_cnn", args={"width": 4}))
    images = np.random.default_rng(0).random((6, 16, 16, 3), dtype=np.float32)
    offsets = prior_correction.offsets(1.0, prior_correction.log_prior(TRAIN_COUNTS, CLASSES))
    raw = trained.predict(images, verbose=0)
    served = served_model(trained, 0.5, tta_flip=False, logit_offsets=offsets).predict(images, verbose=0)
    np.testing.assert_allclose(served, calibration.with_temperature(raw, 0.5, offsets), atol=1e-5)
    assert np.abs(served - calibration.with_temperature(raw, 0.5)).max() > 1e-2  # the offsets are there


@pytest.mark.parametrize("strength", [0.0, 0.5])
def test_offsets_are_minus_strength_times_the_log_prior(strength):
    prior = prior_correction.log_prior(TRAIN_COUNTS, CLASSES)
    found = prior_correction.offsets(strength, prior)
    assert found is None if strength == 0 else np.allclose(found, -strength * prior)
