"""Fits recipe auto's epochs into ``train.time_budget_minutes`` by timing real training steps.

Before training, ``fit_to_budget`` builds a throwaway copy of the chosen model (randomly
initialised: the same cost as the real one) and times a few training steps on a real batch of
the train split, augmented in tf.data as in training, a validation batch and, for transfer
learning, a step with the backbone frozen. From those it estimates an epoch, picks the most
epochs (at most the ``train.epochs`` auto chose as the most the data can use) whose estimate
fits the budget, and prints the estimate; the run summary prints it again beside the time
training took. An epoch count the user set is kept (and still estimated).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import keras
import tensorflow as tf

from visionpipe.components.common.dataset import DECODE_BATCH, image_dataset
from visionpipe.components.train import finetune
from visionpipe.components.train.data import TrainingData
from visionpipe.components.train.recipe import build_and_compile, compile_model
from visionpipe.components.train.spec import Params
from visionpipe.data.records import prefetched
from visionpipe.pipeline.config import is_explicit
from visionpipe.pipeline.stage import StageContext

TIMED_STEPS = 4  # after two untimed ones (tracing, warm caches); the median is taken
# Per epoch besides its steps: the backup checkpoint, TensorBoard and the CSV log (measured here).
EPOCH_OVERHEAD_SECONDS = 0.3
# Training ends at the first epoch end past this multiple of the budget, when the machine runs
# slower than when the steps were timed (other work on a shared machine); the best epoch is kept.
OVERRUN = 1.25
PATIENCE_SHARE = 3  # early stopping waits a third of the epochs (at least MIN_PATIENCE)
MIN_PATIENCE = 10


@dataclasses.dataclass(frozen=True)
class StepTimes:
    train: float  # seconds per training step of one batch
    val: float  # seconds per validation batch
    head: float  # per training step with the backbone frozen (transfer's phase 1); = train without one
    startup: float  # tracing the step functions and decoding both splits into the cache, once


@dataclasses.dataclass(frozen=True)
class Plan:
    epochs: int  # train.epochs: all of them, or the fine-tuning ones after head_epochs
    head_epochs: int
    epoch_seconds: float  # a fine-tuning (or the only) epoch
    head_epoch_seconds: float
    startup: float
    budget_seconds: float

    @property
    def seconds(self) -> float:
        return self.startup + self.head_epochs * self.head_epoch_seconds + self.epochs * self.epoch_seconds

    def seconds_for(self, epochs_run: int) -> float:
        """The estimate for the epochs that ran (early stopping may end before the last)."""
        head = min(epochs_run, self.head_epochs)
        return self.startup + head * self.head_epoch_seconds + (epochs_run - head) * self.epoch_seconds

    def deadline(self) -> Deadline:
        """The callback that holds training to ``OVERRUN`` x the budget, from now."""
        return Deadline(OVERRUN * self.budget_seconds)

    def check(self, fit_seconds: float, epochs_run: int, stopped_at: int = 0) -> tuple[dict, str]:
        """Summary entries and a note comparing the estimate with the time training took."""
        planned = self.head_epochs + self.epochs
        expected = self.seconds_for(epochs_run)
        ran = f" ({minutes(expected)} for the {epochs_run} that ran)" if epochs_run < planned else ""
        if stopped_at:
            ran += f"; stopped after epoch {stopped_at}, past {OVERRUN:g}x the budget (the machine ran slower)"
        note = (
            f"auto: estimated {minutes(self.seconds)} for {planned} epochs{ran}; training took "
            f"{minutes(fit_seconds)} ({fit_seconds / expected:.2f}x the estimate), "
            f"budget {minutes(self.budget_seconds)}"
        )
        return {"estimated_seconds": round(self.seconds, 1), "budget_seconds": self.budget_seconds}, note


class Deadline(keras.callbacks.Callback):
    """Ends training at the first epoch end past ``seconds`` after it was made."""

    def __init__(self, seconds: float):
        super().__init__()
        self.end = time.monotonic() + seconds
        self.stopped_at = 0  # the epoch (from 1) after which it stopped training, if it did

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() > self.end:  # (in both phases of transfer learning)
            self.model.stop_training = True
            self.stopped_at = epoch + 1


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def fit_to_budget(params: Params, data: TrainingData, ctx: StageContext) -> tuple[Params, Plan]:
    """``params`` with the epochs (and early-stopping patience) that fit the budget, and the plan.
    Call inside the distribution strategy's scope; reseed afterwards (the copy draws weights)."""
    times = measure(params, data)
    plan = plan_epochs(params, data, times)
    train = params.train
    patience = train.early_stopping_patience
    if not is_explicit(params.explicit, "train.early_stopping_patience"):
        patience = max(MIN_PATIENCE, math.ceil(plan.epochs / PATIENCE_SHARE))
    fitted = dataclasses.replace(
        params, train=dataclasses.replace(train, epochs=plan.epochs, early_stopping_patience=patience)
    )
    ctx.log(describe(plan, times, data, train.epochs, is_explicit(params.explicit, "train.epochs")))
    return fitted, plan


def measure(params: Params, data: TrainingData) -> StepTimes:
    """Times steps of a throwaway copy of the model on the first batch of the train split."""
    started = time.perf_counter()
    batch = next(iter(image_dataset(data.examples, "train", data.spec, len(data.classes), params.train.batch_size)))
    per_image_decode = (time.perf_counter() - started) / min(DECODE_BATCH, data.counts["train"])
    pretrained = params.model.weights != "none"
    # Random weights cost the same to train and need no download or weights file.
    model = dataclasses.replace(params.model, weights="none")
    copy = build_and_compile(
        params.train, model, data.spec, len(data.classes), data.steps_per_epoch, multi_label=data.multi_label
    ).trainee
    # Augmented as in training, in tf.data's background threads: on a CPU they share the cores.
    augmented = tf.data.Dataset.from_tensors(batch).repeat()
    if data.policy is not None:
        augmented = augmented.map(data.policy.on_batch, num_parallel_calls=tf.data.AUTOTUNE)
    batches = iter(prefetched(augmented))
    train, first = _median_step(lambda: copy.train_on_batch(*next(batches)))
    val, first_val = _median_step(lambda: copy.test_on_batch(*batch))
    head = train
    backbone = finetune.find_backbone(copy) if pretrained else None
    if backbone is not None:
        finetune.freeze(backbone)
        compile_model(copy, params.train, len(data.classes), data.steps_per_epoch, 1)
        head, _ = _median_step(lambda: copy.train_on_batch(*next(batches)))
    tracing = (first - train) + (first_val - val)
    decoding = per_image_decode * (data.counts["train"] + data.counts["val"])
    return StepTimes(train=train, val=val, head=head, startup=max(tracing, 0.0) + decoding)


def _median_step(step) -> tuple[float, float]:
    """(median seconds of TIMED_STEPS calls, seconds of the first call, which traces)."""
    times = []
    for _ in range(TIMED_STEPS + 2):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:]), times[0]


def plan_epochs(params: Params, data: TrainingData, times: StepTimes) -> Plan:
    """The most epochs, up to ``train.epochs``, whose estimate fits the budget (at least one)."""
    train = params.train
    # With an EMA, every epoch validates the averaged and the raw weights (components/train/ema.py).
    val_batches = math.ceil(data.counts["val"] / train.batch_size) * (2 if train.ema_epochs > 0 else 1)
    epoch = data.steps_per_epoch * times.train + val_batches * times.val + EPOCH_OVERHEAD_SECONDS
    head_epoch = data.steps_per_epoch * times.head + val_batches * times.val + EPOCH_OVERHEAD_SECONDS
    head_epochs = train.finetune.head_epochs if params.model.weights != "none" else 0
    budget = train.time_budget_minutes * 60
    if is_explicit(params.explicit, "train.epochs"):
        epochs = train.epochs
    else:
        affordable = math.floor((budget - times.startup - head_epochs * head_epoch) / epoch)
        epochs = max(1, min(train.epochs, affordable))
    return Plan(epochs, head_epochs, epoch, head_epoch, times.startup, budget)


def describe(plan: Plan, times: StepTimes, data: TrainingData, most: int, explicit: bool) -> str:
    """The estimate, printed before training starts."""
    head = f"{plan.head_epochs} head epochs of {plan.head_epoch_seconds:.1f} s then " if plan.head_epochs else ""
    if explicit:
        why = "as you set train.epochs"
    elif plan.epochs < most:
        why = f"what the {minutes(plan.budget_seconds)} budget affords of the {most} this data could use"
    else:
        why = f"the most this data can use; within the {minutes(plan.budget_seconds)} budget"
    return (
        f"auto: timed steps of {data.spec.height}x{data.spec.width} batches: {times.train:.3f} s to train, "
        f"{times.val:.3f} s to validate; {head}{plan.epochs} epochs of {plan.epoch_seconds:.1f} s ({why}) + "
        f"{times.startup:.0f} s to decode and trace: estimated training time {minutes(plan.seconds)}"
    )
