"""Which epoch's model a run keeps, and when it stops early.

Keras' EarlyStopping keeps the lowest val loss. On a small val split the lowest loss can
belong to a model that answers the majority class for every image (a run kept epoch 1 of 21,
at the majority rate, while it trained on). ``BestEpoch`` keeps a model by ``KeepRule``:

- a model is *eligible* when its val accuracy beats the val split's majority-class rate (by
  at least one image); while any epoch's model is eligible, only eligible ones can be kept;
- among those, the lowest val loss wins; with none eligible, the lowest val loss, and the
  run's note says that no epoch beat the majority class;
- with the EMA on, each epoch offers two models, the average and the raw weights (both
  validated, ``ema.py``); the better by the same rule competes (the average on a tie).

Training stops when the kept model has not changed for ``patience`` epochs, and never while
no epoch is eligible: a run that has not beaten the majority class yet goes on to its last
epoch. The kept model and its figures are written beside the BackupAndRestore backup (and
go with it at the end), so a run killed and resumed still knows its best epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from visionpipe.components.train.ema import EMAWeights
from visionpipe.data import record_format
from visionpipe.data.records import records

STATE = "kept_model.npz"  # in the backup folder: the kept weights, and the candidate under "kept"


@dataclasses.dataclass(frozen=True)
class Candidate:
    epoch: int  # 0-based
    weights: str  # "ema" (the average) or "raw"
    loss: float
    accuracy: float


@dataclasses.dataclass(frozen=True)
class KeepRule:
    majority: int  # val images of the most frequent class
    images: int  # val images

    @property
    def majority_rate(self) -> float:
        return self.majority / self.images

    def eligible(self, candidate: Candidate) -> bool:
        # In images, so float32 accuracy at exactly the majority rate never counts as beating it.
        return round(candidate.accuracy * self.images) > self.majority

    def better(self, candidate: Candidate, than: Candidate | None) -> bool:
        return than is None or self._key(candidate) < self._key(than)

    def _key(self, candidate: Candidate) -> tuple[bool, float]:
        loss = candidate.loss if math.isfinite(candidate.loss) else math.inf
        return (not self.eligible(candidate), loss)

    def reason(self, kept: Candidate) -> str:
        """Why ``kept`` was kept, for the run's summary."""
        rate = f"{self.majority_rate:.4f}"
        if self.eligible(kept):
            return f"lowest val loss of the epochs whose val accuracy beats the majority-class rate {rate}"
        return f"lowest val loss; no epoch's val accuracy beat the majority-class rate {rate}"


def keep_rule(examples: Path, split: str = "val", labels: int = 0) -> KeepRule:
    """The rule for the labels of ``split`` of the Examples folder ``examples``. ``labels`` > 0:
    multi-label records with that many labels, whose accuracy counts one decision per image and
    label; the majority answer is then each label's more frequent value (present or absent)."""
    found = records(examples, split, multi_hot=labels).map(lambda r: r[record_format.LABEL])
    if not labels:
        counts = np.bincount(np.fromiter(found.as_numpy_iterator(), dtype=np.int64))
        return KeepRule(int(counts.max()), int(counts.sum()))
    images, present = 0, np.zeros(labels, np.int64)
    for multi_hot in found.as_numpy_iterator():
        images += 1
        present += multi_hot
    return KeepRule(int(np.maximum(present, images - present).sum()), images * labels)


class BestEpoch(keras.callbacks.Callback):
    """Early stopping and the kept model by ``rule``; ``state_dir`` is the backup folder."""

    def __init__(
        self,
        rule: KeepRule,
        patience: int,
        state_dir: Path,
        ema: EMAWeights | None = None,
        log: Callable[[str], None] = print,
    ):
        super().__init__()
        self.rule, self.patience, self._state, self._ema, self._log = rule, patience, Path(state_dir) / STATE, ema, log
        self.kept: Candidate | None = None
        self.last_epoch, self.stopped_early = -1, False
        self._weights: list[np.ndarray] | None = None

    def on_train_begin(self, logs=None):
        if self._state.is_file():  # a resumed run: the best model of the epochs before the kill
            with np.load(self._state) as saved:
                self.kept = Candidate(**json.loads(str(saved["kept"])))
                self._weights = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]

    def on_epoch_begin(self, epoch, logs=None):
        if self.kept is not None and self.kept.epoch >= epoch:  # resumed from an older backup
            self.kept, self._weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.last_epoch = epoch
        candidates = [Candidate(epoch, "ema" if self._ema else "raw", logs["val_loss"], logs["val_accuracy"])]
        if "raw_val_loss" in logs:
            candidates.append(Candidate(epoch, "raw", logs["raw_val_loss"], logs["raw_val_accuracy"]))
        for candidate in candidates:
            if self.rule.better(candidate, self.kept):
                self.kept = candidate
        if self.kept.epoch == epoch:
            self._weights = self._snapshot(self.kept.weights)
            self._save(self._weights, self.kept)
        if self.rule.eligible(self.kept) and epoch - self.kept.epoch >= max(self.patience, 1):
            self.model.stop_training = self.stopped_early = True

    def on_train_end(self, logs=None):
        if self.stopped_early:  # said here, so that the log has the last epoch's line first
            waited = self.last_epoch - self.kept.epoch
            self._log(f"early stopping after epoch {self.last_epoch + 1}: no better model for {waited} epochs")
        if self._weights is not None:
            self.model.set_weights(self._weights)

    def _snapshot(self, weights: str) -> list[np.ndarray]:
        if weights == "ema":
            if self._ema is None:  # on_epoch_end offers "ema" candidates only with an EMAWeights
                raise RuntimeError("the EMA weights were kept in a run without EMA")
            with self._ema.average_in_model():
                return self.model.get_weights()
        return self.model.get_weights()

    def _save(self, weights: list[np.ndarray], kept: Candidate) -> None:
        # One file, renamed into place: a kill mid-write leaves the previous one whole.
        self._state.parent.mkdir(parents=True, exist_ok=True)
        partial = self._state.with_suffix(".partial.npz")
        np.savez(partial, *weights, kept=json.dumps(dataclasses.asdict(kept)))
        os.replace(partial, self._state)

    def note(self) -> str:
        """What was kept and why: "the EMA weights of epoch 12 (lowest val loss of ...)"."""
        kept = self.kept
        if kept is None:  # asked for after training, and every epoch with a val split keeps a model
            raise RuntimeError("no epoch has ended: no model is kept yet")
        weights = {"ema": "the EMA weights", "raw": "the raw weights" if self._ema else "the model"}[kept.weights]
        return f"kept {weights} of epoch {kept.epoch + 1} ({self.rule.reason(kept)})"
