"""The learning-rate schedules of ``train.schedule``, as one Keras LearningRateSchedule.

Every schedule ramps linearly from ``start_fraction`` x peak to the peak over the warmup
steps, then:

- ``cosine``: follows a half cosine down to ``final_fraction`` x peak (the common default);
- ``onecycle`` / ``linear``: falls linearly to ``final_fraction`` x peak (airbench's
  one-cycle is warmup 23% from 0.2, then down to 0.07);
- ``step``: stays at the peak, times ``gamma`` at each milestone (fractions of training);
- ``constant``: stays at the peak.
"""

from __future__ import annotations

import keras
from keras import ops

SCHEDULES = ("cosine", "onecycle", "linear", "step", "constant")


@keras.saving.register_keras_serializable(package="visionpipe")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        kind: str = "cosine",
        start_fraction: float = 0.0,
        final_fraction: float = 0.0,
        milestones: tuple[float, ...] = (0.5, 0.75),
        gamma: float = 0.1,
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
        self.peak, self.total_steps, self.warmup_steps, self.kind = peak, max(total_steps, 1), warmup_steps, kind
        self.start_fraction, self.final_fraction = start_fraction, final_fraction
        self.milestones, self.gamma = tuple(milestones), gamma

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        # (step + 1): the first step already learns (at 1/warmup of the peak, not at zero).
        ramp = self.start_fraction + (1.0 - self.start_fraction) * ops.minimum((step + 1.0) / warmup, 1.0)
        # Progress through the steps after the warmup, from 0 to 1.
        rest = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / rest, 0.0, 1.0)
        final = self.final_fraction
        if self.kind == "cosine":
            after = final + (1.0 - final) * 0.5 * (1.0 + ops.cos(3.141592653589793 * t))
        elif self.kind in ("onecycle", "linear"):
            after = 1.0 + (final - 1.0) * t
        elif self.kind == "step":
            fraction_done = step / float(self.total_steps)
            after = ops.ones_like(step)
            for milestone in self.milestones:
                after = ops.where(fraction_done >= milestone, after * self.gamma, after)
        else:
            after = ops.ones_like(step)
        factor = ops.where(step < self.warmup_steps, ramp, after)
        return self.peak * factor

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "start_fraction": self.start_fraction,
            "final_fraction": self.final_fraction,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }
