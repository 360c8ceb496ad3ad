"""The ``input`` and ``train`` sections: the input pipeline, augmentation and the training recipe."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.typed_tree import ConfigError


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """The tf.data input pipeline that feeds training (see README, input pipeline)."""

    # auto: cache the decoded 8-bit train/val images in memory when they fit memory_budget_mb,
    # else in files under cache_dir when they fit file_budget_mb, else decode every epoch.
    cache: Literal["auto", "memory", "file", "off"] = "auto"
    memory_budget_mb: int = 2048
    file_budget_mb: int = 20480
    cache_dir: str = ""  # "" = the train stage's scratch directory under run.root
    # Images in the shuffle buffer. 0 = the whole train split when it is cached in memory (a
    # true shuffle, whatever order the records are stored in; the buffer holds as much again
    # as the cache), else 10,000. Ingest writes records in mixed class order, so a bounded
    # buffer over several interleaved files still sees every class.
    shuffle_buffer: int = 0
    # Same batches, order and augmentations on every run with the same seed, at some cost
    # in speed (augmentation runs in one thread; TF ops run deterministically).
    deterministic: bool = False


AugmentOp = Literal[
    "random_resized_crop",
    "flip_horizontal",
    "flip_vertical",
    "flip_alternating",
    "translate",
    "rotate",
    "zoom",
    "brightness",
    "contrast",
    "color_jitter",
    "rand_augment",
    "random_erasing",
    "mixup",
    "cutmix",
]


@dataclasses.dataclass(frozen=True)
class AugmentOpConfig:
    """One step of an augmentation policy; what ``magnitude`` means per op is in the README."""

    op: AugmentOp
    probability: float = 1.0  # chance that an image (and its label, for mixup/cutmix) gets this op
    magnitude: float | None = None  # None = the op's default strength
    num_ops: int = 2  # rand_augment: operations per image


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    policy: tuple[AugmentOpConfig, ...] = ()  # applied in order, to training batches only
    # data: on the CPU in tf.data, overlapping the training step (the default). model: inside
    # the model, on the accelerator (GPU/TPU), for heavy policies such as rand_augment.
    # mixup and cutmix change labels too, so they always run in tf.data.
    placement: Literal["data", "model"] = "data"


@dataclasses.dataclass(frozen=True)
class LookaheadConfig:
    """Every ``every`` steps the weights move to a slow average of themselves (airbench)."""

    every: int = 0  # 0 = off; airbench: 5
    decay: float = 0.95  # per step; the averaging weight is decay^every x (step / total)^power
    power: float = 3.0


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Transfer learning (model.weights set): train the head on a frozen backbone first, then
    fine-tune the backbone's top layers (or all of it) at a lower learning rate."""

    head_epochs: int = 3  # phase 1; 0 = fine-tune from the start
    unfreeze: int = -1  # phase 2 trains this many of the backbone's top layers; -1 = all; 0 = none
    learning_rate_scale: float = 0.1  # phase 2's learning rate, as a fraction of train.learning_rate


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12  # with model.weights: the fine-tuning epochs after finetune.head_epochs
    batch_size: int = 64
    # sgd uses Nesterov momentum. muon: Keras' Muon, extended to convolution kernels
    # (components/train/muon.py), for every dense and convolution kernel but the head's; AdamW,
    # at the same learning rate and weight decay, for the rest.
    optimizer: Literal["adamw", "sgd", "muon"] = "adamw"
    momentum: float = 0.9  # sgd and muon
    learning_rate: float = 2e-3  # the peak of the schedule (see learning_rate_scaling)
    # How the learning rate follows the global batch: learning_rate was set for a global batch
    # of learning_rate_batch, and linear (Goyal et al. 2017) or sqrt scales it to batch_size, e.g.
    # when more replicas run a bigger batch. none: learning_rate as given.
    learning_rate_scaling: Literal["none", "linear", "sqrt"] = "none"
    learning_rate_batch: int = 0
    # Learning-rate schedule after a linear warmup from start_lr_fraction x the peak:
    # cosine or linear/onecycle down to final_lr_fraction x the peak, step (x step_gamma at
    # each of step_milestones, fractions of training) or constant.
    schedule: Literal["cosine", "onecycle", "linear", "step", "constant"] = "cosine"
    warmup_epochs: float = 1.0
    start_lr_fraction: float = 0.0
    final_lr_fraction: float = 0.0
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    weight_decay: float = 1e-4  # decoupled (AdamW-style); kept off biases and norm layers unless:
    decay_norm_and_bias: bool = False
    norm_bias_lr_scale: float = 1.0  # learning-rate multiplier for normalisation shifts (airbench: 64)
    gradient_clip_norm: float = 0.0  # clip the global gradient norm; 0 = off
    # An EMA of the weights and BatchNorm statistics over about this many epochs (decay per step
    # 1 - 1/(ema_epochs x steps per epoch)), warmed up so that it follows the raw weights early
    # on. Validated beside the raw weights each epoch; the better is kept. 0 = off.
    ema_epochs: float = 0.0
    lookahead: LookaheadConfig = LookaheadConfig()
    label_smoothing: float = 0.0
    # The loss. focal: categorical focal loss (Lin et al. 2017), each image's cross-entropy scaled
    # by (1 - p)^focal_gamma, p its probability of the true class: images the model already gets
    # right weigh little, so rare and hard classes weigh more (imbalanced data: README). Its
    # alpha is 1, not the paper's 0.25: a constant factor would only cut the learning rate.
    # asymmetric (multi-label data only): the asymmetric loss (Ridnik et al. 2021, the paper's
    # defaults; components/train/losses.py): each negative label's term scaled by
    # max(p - asymmetric_clip, 0)^asymmetric_gamma_negative, each positive's by
    # (1 - p)^asymmetric_gamma_positive, so the many easy negatives weigh little.
    loss: Literal["cross_entropy", "focal", "asymmetric"] = "cross_entropy"
    focal_gamma: float = 2.0
    asymmetric_gamma_negative: float = 4.0
    asymmetric_gamma_positive: float = 0.0
    asymmetric_clip: float = 0.05
    # Mixed precision for accelerators (float16 on GPUs, bfloat16 on TPUs and some CPUs); auto:
    # bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX), else off
    # (components/train/precision.py). The saved and exported model is float32 either way.
    mixed_precision: Literal["off", "auto", "mixed_float16", "mixed_bfloat16"] = "off"
    finetune: FinetuneConfig = FinetuneConfig()
    augment: AugmentConfig = AugmentConfig()
    # Class imbalance. weights: each example's loss is weighted by n_train / (n_classes *
    # n_class). resample: the train stream is resampled to equal class frequencies.
    class_balance: Literal["none", "weights", "resample"] = "none"
    # Stop when the kept model (components/train/best_epoch.py: the lowest val loss among the
    # epochs that beat the val split's majority class) has not changed for this many epochs.
    early_stopping_patience: int = 4
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = "auto"
    tpu_address: str = ""
    steps_per_epoch: int = 0  # 0 = one pass over the train split
    backup_every_steps: int = 0  # resumable backups every N steps as well as every epoch; 0 = epochs only
    # XLA compilation of the train step. auto: Keras' rule, on with a GPU or TPU when every layer
    # supports it, off on CPUs.
    jit_compile: bool | Literal["auto"] = "auto"
    # Keras' own fit output, into the run log (visionpipe shows its progress); not in the cache key
    verbose: Literal[0, 1, 2] = dataclasses.field(default=0, metadata=OUTSIDE_KEY)
    # recipe: auto fits its choices and its epoch count into about this many minutes of training
    # (the fit itself) on this machine; manual recipes ignore it (README: the auto recipe).
    time_budget_minutes: float = 10.0

    def __post_init__(self):
        for name in (
            "ema_epochs",
            "early_stopping_patience",
            "focal_gamma",
            "asymmetric_gamma_negative",
            "asymmetric_gamma_positive",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be 0 or more; got {getattr(self, name)}")
        if not 0.0 <= self.asymmetric_clip < 1.0:
            raise ConfigError(f"train.asymmetric_clip must be in [0, 1); got {self.asymmetric_clip}")
        if self.time_budget_minutes <= 0:
            raise ConfigError(f"train.time_budget_minutes must be positive; got {self.time_budget_minutes}")
        if self.learning_rate_scaling != "none" and self.learning_rate_batch <= 0:
            raise ConfigError(
                f"train.learning_rate_scaling is {self.learning_rate_scaling}: set train.learning_rate_batch to the "
                "global batch train.learning_rate was chosen for (e.g. 512)"
            )

    def peak_learning_rate(self) -> float:
        """learning_rate scaled to batch_size by learning_rate_scaling."""
        if self.learning_rate_scaling == "none":
            return self.learning_rate
        ratio = self.batch_size / self.learning_rate_batch
        return self.learning_rate * (ratio if self.learning_rate_scaling == "linear" else math.sqrt(ratio))
