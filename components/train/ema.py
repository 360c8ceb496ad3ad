"""An exponential moving average (EMA) of the weights that is useful from the first epochs on.

Keras' optimizer EMA (``use_ema``) has no warm-up: at 0.99 per step, a run of 4 steps per
epoch still validates weights that are 40% the random initial ones after 21 epochs. It also
averages only the trainable variables, so BatchNorm's moving statistics belong to other
weights than the ones validated and exported. This EMA:

- is defined in epochs: the decay per step is ``1 - 1 / (epochs x steps per epoch)`` (the
  average's weights are about ``epochs`` old), so a preset means the same on 200 images and
  on 50,000, where a decay per step means 25 epochs on the first and a fifth of one on the
  second;
- warms up as TF's ``ExponentialMovingAverage(num_updates=t)``: update t uses
  ``min(decay, (1 + t) / (10 + t))``, so until the decay is reached the average spans about
  the last tenth of the steps so far, and the initial weights weigh nothing after a handful
  of steps (timm's ModelEmaV3 warms up in the same spirit, with ``1 - (1 + t)^(-2/3)``);
- averages BatchNorm's moving mean and variance with the weights, as timm averages buffers,
  so the statistics validated and exported are the averaged model's (tests/components/test_ema.py);
- lives in the optimizer (``WeightAverage``): the update of every averaged variable runs in
  the compiled train step, with no Python per step, and the averages are optimizer
  variables, so each BackupAndRestore backup holds them and a resumed run goes on with the
  same average.

``EMAWeights`` (a callback) swaps the average in for fit's validation, scores the raw weights
on the val split too (``raw_val_loss``, ``raw_val_accuracy``, as timm validates both), and
without a val split leaves the average in the model at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import keras
import tensorflow as tf

WARMUP = 10.0  # update t decays by at most (1 + t) / (WARMUP + t)


def decay_per_step(epochs: float, steps_per_epoch: int) -> float:
    """The EMA's decay for a horizon of ``epochs`` epochs; 0 (the raw weights) below one step."""
    steps = epochs * steps_per_epoch
    return 1.0 - 1.0 / steps if steps > 1 else 0.0


def warmed_up_decay(decay: float, step) -> tf.Tensor:
    """The decay of update ``step`` (0 for the first: the average starts at the trained weights)."""
    t = tf.cast(step, tf.float32)
    return tf.where(t > 0, tf.minimum(decay, (1.0 + t) / (WARMUP + t)), 0.0)


def batchnorm_statistics(model: keras.Model) -> list:
    """The moving mean and variance of every BatchNormalization layer of ``model``."""
    return [
        variable
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


class _Average:
    """What an optimizer averages, in a holder its variable tracker leaves alone: a list or tuple
    attribute would make the model's variables count (and be saved) as the optimizer's own."""

    def __init__(self, decay: float, statistics: tuple):
        self.decay, self.statistics = decay, statistics
        self.pairs: tuple = ()  # (model variable, its average), once the optimizer is built


class WeightAverage:
    """Optimizer mixin (list it before the Keras optimizer): an EMA of the trainable variables
    and of ``statistics``, updated after every step. Off until ``average_weights`` is called."""

    _average: _Average | None = None

    def average_weights(self, decay: float, statistics: list) -> None:
        """Call before the optimizer is built (compile time)."""
        self._average = _Average(decay, tuple(statistics))

    def build(self, variables):
        super().build(variables)
        if self._average is not None:
            averaged = [*variables, *self._average.statistics]
            averages = [self.add_variable_from_reference(v, name="average") for v in averaged]
            self._average.pairs = tuple(zip(averaged, averages, strict=True))

    def averaged(self) -> tuple:
        """(model variable, its average) pairs; empty when the optimizer keeps no average."""
        return self._average.pairs if self._average is not None else ()

    def _backend_apply_gradients(self, grads, trainable_variables):
        super()._backend_apply_gradients(grads, trainable_variables)
        if self.averaged():
            # Under a distribution strategy the averages update on every replica, as the
            # optimizer's own slots do (Keras' TF optimizer does the same for weight decay).
            tf.__internal__.distribute.interim.maybe_merge_call(self._update_averages, self._distribution_strategy)

    def _update_averages(self, distribution):
        decay = warmed_up_decay(self._average.decay, self._iterations)  # iterations: the updates before this one
        for variable, average in self._average.pairs:
            distribution.extended.update(
                average.value,
                lambda a, v: a.assign(v + tf.cast(decay, a.dtype) * (a - v)),
                args=(variable.value,),
                group=False,
            )


def swap(pairs: tuple) -> None:
    """Exchanges each variable's value with its average's (twice restores them)."""
    for variable, average in pairs:
        value = tf.identity(variable.value)
        variable.assign(average.value)
        average.assign(value)


class EMAWeights(keras.callbacks.Callback):
    """fit's validation sees the average; ``val`` (the val dataset, if any) is scored with the
    raw weights as well; without ``val`` the model ends on the average."""

    def __init__(self, val: tf.data.Dataset | None = None):
        super().__init__()
        self._val, self._swapped = val, False
        self._swap: Callable[[], object] | None = None  # compiled on the first exchange

    def _pairs(self) -> tuple:
        return self.model.optimizer.averaged()  # built with the optimizer, by the first step

    def _exchange(self) -> None:
        if self._swap is None:
            # All variables in one compiled call, where eager ops per variable cost more.
            self._swap = tf.function(lambda: swap(self._pairs()))
        self._swap()
        self._swapped = not self._swapped

    def on_test_begin(self, logs=None):
        if not self._swapped:
            self._exchange()

    def on_test_end(self, logs=None):
        if self._swapped:
            self._exchange()

    def on_epoch_end(self, epoch, logs=None):
        if self._val is not None and logs is not None:
            raw = self.model.evaluate(self._val, verbose=0, return_dict=True)
            logs.update({f"raw_val_{name}": float(value) for name, value in raw.items()})

    def on_train_end(self, logs=None):
        if self._val is None and not self._swapped and self._pairs():
            self._exchange()  # the average is the model that is kept

    @contextlib.contextmanager
    def average_in_model(self):
        """A context in which the model holds the average (for a snapshot of it)."""
        self.on_test_begin()
        try:
            yield
        finally:
            self.on_test_end()
