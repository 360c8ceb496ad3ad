"""Training progress for a person: live epoch and step, loss and accuracy, and the stage's
ETA (``pipeline.output``), plus one line per finished epoch. Keras' own progress bar prints a
line per epoch or a bar per step with no stage ETA, and nothing else of the run. Used by the
train stage and by export's distillation (the student's and the channel-pruned model's).
"""

from __future__ import annotations

import contextlib
import time

import keras

from visionpipe.pipeline.stage import StageContext


class TrainingProgress(keras.callbacks.Callback):
    def __init__(self, ctx: StageContext, epochs: int, steps_per_epoch: int, description: str = "training"):
        """``description``: the live line's ("training", "distilling ..."); a description other
        than training also starts each epoch's line."""
        super().__init__()
        self._ctx, self._epochs, self._steps, self._description = ctx, epochs, steps_per_epoch, description
        self._line_prefix = "" if description == "training" else f"{description}: "
        self._exit = contextlib.ExitStack()
        self._tracker = None
        self._epoch = 0
        self._epoch_started = 0.0

    def on_train_begin(self, logs=None):
        progress = self._ctx.progress(self._description, self._epochs * self._steps, "steps")
        self._tracker = self._exit.enter_context(progress)

    def on_epoch_begin(self, epoch, logs=None):
        # After a resume (BackupAndRestore) the first epoch is not 0: the count starts there.
        self._epoch, self._epoch_started = epoch, time.monotonic()
        self._tracker.update(epoch * self._steps, epoch=f"{epoch + 1}/{self._epochs}")

    def on_train_batch_end(self, batch, logs=None):
        fields = {"epoch": f"{self._epoch + 1}/{self._epochs}"}
        fields.update({k: f"{float(v):.4f}" for k, v in (logs or {}).items() if k in ("loss", "accuracy")})
        self._tracker.update(self._epoch * self._steps + batch + 1, **fields)

    def on_epoch_end(self, epoch, logs=None):
        figures = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        seconds = time.monotonic() - self._epoch_started
        self._ctx.log(f"{self._line_prefix}epoch {epoch + 1}/{self._epochs}: {figures} ({seconds:.0f} s)")

    def on_train_end(self, logs=None):
        self._exit.close()
