"""Building and compiling the model from a config: the seam that plain training and the tune
stage's ``HyperModel.build(hp)`` share.

``build_and_compile`` makes the classifier (``models.classifier``) and compiles it with the
recipe of ``train.*``: AdamW, SGD with Nesterov momentum or Muon for the convolution and dense
kernels with AdamW for the rest (``muon.py``), a warmup schedule
(``schedules.py``), decoupled weight decay kept off biases and normalisation parameters,
optional gradient clipping, an EMA of the weights and BatchNorm statistics with a warm-up
(``ema.py``: validated beside the raw weights, and kept when it validates better), label
smoothing and an optional learning-rate multiplier for normalisation shifts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import keras

from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.ema import WeightAverage, batchnorm_statistics, decay_per_step
from visionpipe.components.train.losses import AsymmetricLoss
from visionpipe.components.train.muon import ConvolutionMuon, muon_kernels
from visionpipe.components.train.schedules import WarmupSchedule
from visionpipe.models.classifier import build_classifier
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.errors import UserError

if TYPE_CHECKING:
    from visionpipe.components.train.data import TrainingData

NORMALIZATION_LAYERS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


@dataclasses.dataclass
class Compiled:
    classifier: keras.Model  # what is saved and exported
    trainee: keras.Model  # what is fitted: the classifier, behind in-model augmentation if any


def build_and_compile(
    train: TrainConfig,
    model: ModelConfig,
    spec: PreprocessingSpec,
    num_classes: int,
    steps_per_epoch: int,
    augment_in_model: keras.layers.Layer | None = None,
    multi_label: bool = False,
) -> Compiled:
    """Call inside the distribution strategy's scope."""
    classifier = build_classifier(spec, num_classes, model, multi_label=multi_label)
    trainee = classifier
    if augment_in_model is not None:
        image = keras.Input(spec.input_shape, name="image")
        trainee = keras.Model(image, classifier(augment_in_model(image)), name="trainee")
    compile_model(trainee, train, num_classes, steps_per_epoch, train.epochs, multi_label=multi_label)
    return Compiled(classifier, trainee)


def build_for(data: TrainingData, train: TrainConfig, model: ModelConfig) -> Compiled:
    """``build_and_compile`` for the datasets it will fit: their spec, classes (or labels), epoch
    length, in-model augmentation and task."""
    in_model = data.policy.in_model if data.policy is not None else None
    return build_and_compile(
        train, model, data.spec, len(data.classes), data.steps_per_epoch, in_model, data.multi_label
    )


def compile_model(
    model: keras.Model,
    train: TrainConfig,
    num_classes: int,
    steps_per_epoch: int,
    epochs: int,
    lr_scale: float = 1.0,
    multi_label: bool = False,
) -> None:
    """(Re)compiles ``model`` for ``epochs`` epochs at ``lr_scale`` x the (scaled) learning rate."""
    model.compile(
        optimizer=make_optimizer(train, model, steps_per_epoch * epochs, steps_per_epoch, lr_scale),
        loss=make_loss(train, multi_label),
        metrics=make_metrics(num_classes, multi_label),
        jit_compile=train.jit_compile,
    )


def make_metrics(num_classes: int, multi_label: bool) -> list[keras.metrics.Metric]:
    """What fit reports. ``accuracy`` is the share of right decisions: the top class, or (multi-label)
    each label's yes/no at 0.5, which early stopping's rule compares with always answering each
    label's more frequent value. Multi-label also reports ``map``: the mean over labels of the
    area under the precision-recall curve (Keras' estimate of macro mAP, on 200 thresholds)."""
    if multi_label:
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(curve="PR", multi_label=True, num_labels=num_classes, name="map"),
        ]
    # Top-3 only where it says something: with 3 classes or fewer it is always 1.
    return [keras.metrics.CategoricalAccuracy(name="accuracy")] + (
        [keras.metrics.TopKCategoricalAccuracy(k=3, name="top_k_accuracy")] if num_classes > 3 else []
    )


def make_loss(train: TrainConfig, multi_label: bool = False) -> keras.losses.Loss:
    """train.loss with train.label_smoothing (focal with gamma 0 is the cross-entropy); binary
    (a sigmoid per label) for multi-label data."""
    if multi_label:
        if train.loss == "asymmetric":
            return AsymmetricLoss(
                train.asymmetric_gamma_negative, train.asymmetric_gamma_positive, train.asymmetric_clip,
                label_smoothing=train.label_smoothing,
            )  # fmt: skip
        if train.loss == "focal":
            return keras.losses.BinaryFocalCrossentropy(gamma=train.focal_gamma, label_smoothing=train.label_smoothing)
        return keras.losses.BinaryCrossentropy(label_smoothing=train.label_smoothing)
    if train.loss == "asymmetric":
        raise UserError(
            "train.loss asymmetric weighs each image's negative labels against its positive ones: it is for "
            "multi-label data; for imbalanced classes use train.loss: focal, train.class_balance: weights or "
            "evaluate.prior_correction: true"
        )
    if train.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=train.focal_gamma, label_smoothing=train.label_smoothing
        )
    return keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing)


def make_optimizer(
    train: TrainConfig, model: keras.Model, total_steps: int, steps_per_epoch: int, lr_scale: float = 1.0
) -> keras.optimizers.Optimizer:
    schedule = WarmupSchedule(
        peak=train.peak_learning_rate() * lr_scale,
        total_steps=total_steps,
        warmup_steps=math.ceil(train.warmup_epochs * steps_per_epoch),
        kind=train.schedule,
        start_fraction=train.start_lr_fraction,
        final_fraction=train.final_lr_fraction,
        milestones=train.step_milestones,
        gamma=train.step_gamma,
    )
    common = {"weight_decay": train.weight_decay or None, "global_clipnorm": train.gradient_clip_norm or None}
    optimizer: ScaledSGD | ScaledMuon | ScaledAdamW
    if train.optimizer == "sgd":
        optimizer = ScaledSGD(schedule, momentum=train.momentum, nesterov=True, **common)
    elif train.optimizer == "muon":
        optimizer = ScaledMuon(schedule, momentum=train.momentum, adam_weight_decay=common["weight_decay"], **common)
        optimizer.muon_variables = {optimizer._var_key(v) for v in muon_kernels(model)}
    else:
        optimizer = ScaledAdamW(schedule, **common)
    if train.norm_bias_lr_scale != 1.0:
        optimizer.scaled_variables = {optimizer._var_key(v) for v in _norm_shifts(model)}
        optimizer.scale = train.norm_bias_lr_scale
    if train.weight_decay and not train.decay_norm_and_bias:
        # Biases, normalisation scales and shifts: decaying them only fights the normalisation.
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    if train.ema_epochs > 0:
        optimizer.average_weights(decay_per_step(train.ema_epochs, steps_per_epoch), batchnorm_statistics(model))
    return optimizer


def _norm_shifts(model: keras.Model) -> list:
    """The shift (beta) variables of the model's normalisation layers."""
    return [
        layer.beta
        for layer in model._flatten_layers()
        if isinstance(layer, NORMALIZATION_LAYERS) and getattr(layer, "beta", None) is not None
    ]


class _ScaledLearningRate:
    """A learning-rate multiplier for some variables (airbench trains BatchNorm shifts 64x
    faster); Keras optimizers have one learning rate for all."""

    scaled_variables: set | frozenset = frozenset()  # optimizer variable keys
    scale: float = 1.0

    def update_step(self, gradient, variable, learning_rate):
        if self.scaled_variables and self._var_key(variable) in self.scaled_variables:
            learning_rate = learning_rate * self.scale
        return super().update_step(gradient, variable, learning_rate)


class ScaledSGD(_ScaledLearningRate, WeightAverage, keras.optimizers.SGD):
    pass


class ScaledAdamW(_ScaledLearningRate, WeightAverage, keras.optimizers.AdamW):
    pass


class ScaledMuon(_ScaledLearningRate, WeightAverage, ConvolutionMuon):
    pass
