"""Which epoch's model a run keeps and when it stops (components/train/best_epoch.py): never a
model no better than the majority class while a later one is, and a resumed run remembers."""

import contextlib

import keras
import numpy as np
import pytest

from visionpipe.components.train.best_epoch import BestEpoch, Candidate, KeepRule

RULE = KeepRule(majority=70, images=153)  # the val split: 70 of 153 in one class
AT_MAJORITY = float(np.float32(70 / 153))  # a model that answers the majority class for every image


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    return model


def _run(callback: BestEpoch, epochs: list[tuple[float, float]], first: int = 0, model=None) -> keras.Model:
    """Drives ``callback`` through epochs of (val loss, val accuracy); the weights of epoch e
    are all e, so the kept weights say which epoch was kept. Stops when the callback says so."""
    model = model or _model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (loss, accuracy) in enumerate(epochs, start=first):
        callback.on_epoch_begin(epoch)
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"val_loss": loss, "val_accuracy": accuracy})
        if model.stop_training:
            break
    callback.on_train_end()
    return model


def _kept_epoch(model) -> int:
    return int(model.get_weights()[0].flat[0])


def test_eligible_means_at_least_one_image_more_than_the_majority_class():
    assert not RULE.eligible(Candidate(0, "raw", 0.5, AT_MAJORITY))
    assert RULE.eligible(Candidate(0, "raw", 0.5, 71 / 153))
    assert RULE.better(Candidate(1, "raw", 0.9, 71 / 153), Candidate(0, "raw", 0.1, AT_MAJORITY))
    assert RULE.better(Candidate(1, "raw", 0.6, 0.8), Candidate(0, "raw", 0.7, 0.9))  # then the val loss
    assert not RULE.better(Candidate(1, "raw", float("nan"), 0.8), Candidate(0, "raw", 0.7, 0.8))


def test_a_later_model_that_beats_the_majority_class_is_kept_over_a_lower_loss_one(tmp_path):
    # The run: epoch 1 has the lowest val loss and answers one class; later ones learn.
    epochs = [(0.60, AT_MAJORITY), (0.66, AT_MAJORITY), (0.70, 0.70), (0.68, 0.75), (0.69, 0.78)]
    best = BestEpoch(RULE, patience=20, state_dir=tmp_path)
    model = _run(best, epochs)
    assert _kept_epoch(model) == 3 and best.kept == Candidate(3, "raw", 0.68, 0.75)
    assert best.note() == (
        "kept the model of epoch 4 (lowest val loss of the epochs whose val accuracy beats the "
        "majority-class rate 0.4575)"
    )


def test_early_stopping_waits_until_a_model_beats_the_majority_class(tmp_path):
    stuck = [(0.6 - 0.01 * e, AT_MAJORITY) if e == 0 else (0.7, AT_MAJORITY) for e in range(6)]
    best = BestEpoch(RULE, patience=2, state_dir=tmp_path / "a")
    _run(best, stuck)
    assert best.last_epoch == 5, "stopped before any epoch beat the majority class"
    assert best.note().endswith("(lowest val loss; no epoch's val accuracy beat the majority-class rate 0.4575)")

    learns = [*stuck, (0.65, 0.8), (0.66, 0.8), (0.67, 0.8), (0.5, 0.9)]
    best = BestEpoch(RULE, patience=2, state_dir=tmp_path / "b")
    model = _run(best, learns)
    assert best.last_epoch == 8 and _kept_epoch(model) == 6  # two epochs without a better one


class _FakeEMA:
    """The average of epoch e is all -e."""

    def __init__(self, model):
        self._model = model

    @contextlib.contextmanager
    def average_in_model(self):
        raw = self._model.get_weights()
        self._model.set_weights([-w for w in raw])
        yield
        self._model.set_weights(raw)


@pytest.mark.parametrize("raw_loss, kept", [(0.5, "raw"), (0.6, "ema"), (0.7, "ema")])
def test_the_better_of_the_average_and_the_raw_weights_is_kept(tmp_path, raw_loss, kept):
    model = _model()
    best = BestEpoch(RULE, patience=5, state_dir=tmp_path, ema=_FakeEMA(model))
    best.set_model(model)
    best.on_train_begin()
    model.set_weights([np.full_like(w, 3) for w in model.get_weights()])
    best.on_epoch_end(3, {"val_loss": 0.6, "val_accuracy": 0.8, "raw_val_loss": raw_loss, "raw_val_accuracy": 0.8})
    best.on_train_end()
    assert best.kept.weights == kept and _kept_epoch(model) == (3 if kept == "raw" else -3)
    assert best.note().startswith(f"kept the {'EMA' if kept == 'ema' else 'raw'} weights of epoch 4 (")


def test_a_resumed_run_remembers_the_model_kept_before_the_kill(tmp_path):
    _run(BestEpoch(RULE, patience=5, state_dir=tmp_path), [(0.7, 0.7), (0.5, 0.8), (0.6, 0.8)])
    resumed = BestEpoch(RULE, patience=5, state_dir=tmp_path)
    model = _run(resumed, [(0.55, 0.8), (0.65, 0.8)], first=3)
    assert resumed.kept.epoch == 1 and _kept_epoch(model) == 1 and resumed.last_epoch == 4
    # Resumed from an older backup (epoch 1 runs again): what it kept at epoch 1 is forgotten.
    again = BestEpoch(RULE, patience=5, state_dir=tmp_path)
    model = _run(again, [(0.9, 0.8), (0.8, 0.8)], first=1)
    assert again.kept.epoch == 2 and _kept_epoch(model) == 2
