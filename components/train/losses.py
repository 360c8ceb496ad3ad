"""The asymmetric loss for multi-label data (Ridnik et al., "Asymmetric Loss For Multi-Label
Classification", ICCV 2021), which Keras does not ship.

An image of multi-label data is a positive for the few labels it carries and a negative for all
the rest, so the easy negatives swamp the binary cross-entropy. The asymmetric loss focuses the
two sides differently: a positive's log-likelihood is scaled by (1 - p)^gamma_positive (0: kept
as it is), a negative's by p_m^gamma_negative, where p_m = max(p - clip, 0) also discards the
negatives the model already scores below ``clip`` (and softens mislabelled negatives, whose p is
high). It is averaged over labels like Keras' binary cross-entropy, so a learning rate chosen for
one suits the other in scale. With gamma_negative = gamma_positive = clip = 0 it is the binary
cross-entropy (tested).
"""

from __future__ import annotations

import keras
from keras import ops

_EPSILON = 1e-7  # as Keras' own cross-entropies: log(0) guard


@keras.saving.register_keras_serializable(package="visionpipe")
class AsymmetricLoss(keras.losses.Loss):
    def __init__(
        self,
        gamma_negative: float = 4.0,
        gamma_positive: float = 0.0,
        clip: float = 0.05,
        label_smoothing: float = 0.0,
        name: str = "asymmetric_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.gamma_negative, self.gamma_positive = gamma_negative, gamma_positive
        self.clip, self.label_smoothing = clip, label_smoothing

    def call(self, y_true, y_pred):
        p = ops.clip(ops.cast(y_pred, "float32"), _EPSILON, 1.0 - _EPSILON)
        y = ops.cast(y_true, "float32")
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        shifted = ops.maximum(p - self.clip, 0.0)  # the negatives' probability, shifted down by clip
        positive = y * ops.power(1.0 - p, self.gamma_positive) * ops.log(p)
        negative = (1.0 - y) * ops.power(shifted, self.gamma_negative) * ops.log(ops.maximum(1.0 - shifted, _EPSILON))
        return -ops.mean(positive + negative, axis=-1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "gamma_negative": self.gamma_negative,
            "gamma_positive": self.gamma_positive,
            "clip": self.clip,
            "label_smoothing": self.label_smoothing,
        }
