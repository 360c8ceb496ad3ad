"""The callbacks of a training run, and the two that Keras does not have.

``training_callbacks`` assembles, in an order that matters: BackupAndRestore (resume after a
kill; it saves at the end of an epoch before anything swaps weights, so a backup holds the
raw weights, and the EMA's average is in the optimizer's state), Preemption, EMAWeights
(validation sees the EMA of the weights, and the raw weights are validated as well:
``ema.py``), BestEpoch (early stopping and the kept model, when there is a val split:
``best_epoch.py``), Lookahead, the layers' own epoch hooks, TensorBoard, a CSV log and the
progress.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from visionpipe.components.common.progress import TrainingProgress
from visionpipe.components.train.best_epoch import BestEpoch, KeepRule
from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.ema import EMAWeights
from visionpipe.pipeline.stage import StageContext


class Lookahead(keras.callbacks.Callback):
    """Every ``every`` steps the weights (and BatchNorm statistics) step towards a slow copy
    and are replaced by it: slow = slow + (1 - d) (fast - slow), with d = decay^every x
    (step / total)^power, so the averaging is off at the start and strongest at the end; the
    run ends on the slow weights (airbench's "Lookahead": Zhang et al., 2019, with an EMA)."""

    def __init__(self, every: int, decay: float, power: float, total_steps: int):
        super().__init__()
        self.every, self.decay, self.power, self.total_steps = every, decay, power, max(total_steps, 1)
        self._slow: list[tf.Tensor] = []  # one per float variable, from on_train_begin

    def _variables(self):
        return [v for v in self.model.variables if "float" in str(v.dtype)]

    def on_train_begin(self, logs=None):
        self._slow = [ops.copy(v.value) for v in self._variables()]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        d = self.decay**self.every * min(step / self.total_steps, 1.0) ** self.power
        for i, (variable, slow) in enumerate(zip(self._variables(), self._slow, strict=True)):
            self._slow[i] = slow + (1.0 - d) * (variable.value - slow)
            variable.assign(self._slow[i])

    def on_train_end(self, logs=None):
        for variable, slow in zip(self._variables(), self._slow, strict=True):
            variable.assign(slow)


PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: try again; distinct from a crash (1) or a kill (-9)


class Preemption(keras.callbacks.Callback):
    """On SIGTERM (a preemptible VM, a Kubernetes eviction), finishes the current step, writes
    a backup and exits with ``PREEMPTED_EXIT_CODE``; rerunning the same command resumes."""

    def __init__(self, backup: keras.callbacks.BackupAndRestore, ctx: StageContext):
        super().__init__()
        self._backup, self._ctx, self._signalled = backup, ctx, False

    def on_train_begin(self, logs=None):
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self._signalled = True

    def on_train_batch_end(self, batch, logs=None):
        if self._signalled:
            self._backup._last_batch_seen = batch
            self._backup._save_model()
            self._ctx.log(
                f"preempted (SIGTERM) in epoch {self._backup._current_epoch + 1}, step {batch + 1}: backup written; "
                f"exiting with code {PREEMPTED_EXIT_CODE}. Rerun the same command to resume"
            )
            raise SystemExit(PREEMPTED_EXIT_CODE)

    def on_train_end(self, logs=None):
        signal.signal(signal.SIGTERM, self._previous)


class LayerEpochHooks(keras.callbacks.Callback):
    """Calls ``on_epoch_begin(epoch)`` on layers that schedule themselves (e.g. airbench's
    whitening layer, whose bias trains for the first epochs only)."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model._flatten_layers():
            if hasattr(layer, "on_epoch_begin") and not isinstance(layer, keras.Model):
                layer.on_epoch_begin(epoch)


@dataclasses.dataclass
class Callbacks:
    all: list[keras.callbacks.Callback]
    best: BestEpoch | None  # with a val split: which epoch's model is kept, and why


def training_callbacks(
    train: TrainConfig,
    ctx: StageContext,
    logs: Path,
    backup: Path,
    epochs: int,
    steps_per_epoch: int,
    val: tf.data.Dataset | None,
    rule: KeepRule | None,
    initial_epoch: int = 0,
) -> Callbacks:
    """``val`` and ``rule`` (the val split and its majority class) are None without a val split."""
    # Every epoch, and every train.backup_every_steps steps; the previous backup is kept until
    # the new one is complete, so a kill in the middle of a write leaves one that restores.
    backup_and_restore = keras.callbacks.BackupAndRestore(
        str(backup), save_freq=train.backup_every_steps or "epoch", double_checkpoint=True
    )
    callbacks: list[keras.callbacks.Callback] = [backup_and_restore, Preemption(backup_and_restore, ctx)]
    ema = EMAWeights(val) if train.ema_epochs > 0 else None
    if ema is not None:
        callbacks.append(ema)
    best = None
    if val is not None:
        if rule is None:  # the caller passes both with a val split, neither without one
            raise ValueError("training_callbacks: a val split needs its KeepRule")
        best = BestEpoch(rule, train.early_stopping_patience, backup, ema, ctx.log)
        callbacks.append(best)
    if train.lookahead.every:
        lookahead = train.lookahead
        callbacks.append(Lookahead(lookahead.every, lookahead.decay, lookahead.power, epochs * steps_per_epoch))
    callbacks += [
        LayerEpochHooks(),
        keras.callbacks.TensorBoard(str(logs)),
        keras.callbacks.CSVLogger(str(logs.parent / "history.csv"), append=initial_epoch > 0),
        TrainingProgress(ctx, epochs, steps_per_epoch),
    ]
    return Callbacks(callbacks, best)
