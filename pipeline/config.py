"""The one typed configuration tree of a visionpipe run.

Every setting a run can take lives here as a frozen dataclass field with a default. YAML files
and ``--set a.b=value`` overrides are checked against these types: an unknown key or a value
of the wrong type fails with a ``ConfigError`` that names the key, the expected type and the
valid keys, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

# ConfigError, coerce and to_dict are part of this module's interface too.
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.typed_tree import ConfigError, apply_override, build, coerce, to_dict  # noqa: F401


@dataclasses.dataclass(frozen=True)
class RunConfig:
    root: str = "visionpipe_runs"  # artifacts, metadata.sqlite and logs of every run live here


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Shares of each class per split, where visionpipe assigns splits or carves a split that a
    pre-split layout lacks out of its train images. 0 = the split is deliberately absent:
    val 0 trains on all of train (no early stopping); test 0 evaluates on val."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    # A test split that visionpipe makes (assigned or carved) is sized from the data, not only
    # from ``test``: on a few hundred images 10% is a couple of dozen, and a 95% interval on 27
    # images is about 0.37 wide, too wide to tell a model from always answering one class. So
    # each class gives the test split at least ``min_test_per_class`` images and the split holds
    # at least ``min_test_images`` in all (spread over the classes in proportion; 60 images give
    # an accuracy interval about 0.25 wide at worst, evaluate.max_interval_width), but never more
    # than ``max_test_share`` of a class for these minimums: training keeps the rest. Classes big
    # enough for ``test`` alone to give more are unchanged (CIFAR, MNIST).
    min_test_images: int = 60
    min_test_per_class: int = 10
    max_test_share: float = 0.25
    # The data is too small for a separate test split when that rule gives fewer images than
    # this: then no test split is made (its images train), evaluate scores val, and the gate's
    # verdict is at best INCONCLUSIVE (val chose the kept epoch). Only when there is a val split.
    min_test_size: int = 20


@dataclasses.dataclass(frozen=True)
class TFRecordSourceConfig:
    """Feature names in a user's TFRecords of tf.train.Example (data.source == "tfrecord")."""

    image_key: str = "image/encoded"
    label_key: str = "image/class/label"  # int64 class id or bytes class name
    split_key: str = ""  # optional bytes feature holding train/val/test; "" = visionpipe splits
    class_names: tuple[str, ...] = ()  # names of int64 label ids, in id order; () = the ids


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: Literal["builtin", "folder", "manifest", "tfrecord", "tfds"] = "builtin"
    # folder: <path>/<class>/**/<image> or <path>/{train,val,test}/<class>/**/<image>;
    # manifest: a .csv or .jsonl file with path, label and optional split;
    # tfrecord: a file pattern, e.g. /data/records/*.tfrecord. Local or any Beam filesystem.
    path: str = ""
    builtin_name: Literal["mnist5k"] = "mnist5k"
    tfrecord: TFRecordSourceConfig = TFRecordSourceConfig()
    tfds_name: str = ""  # e.g. "mnist" or "mnist/3.0.1", prepared under tfds_data_dir
    tfds_data_dir: str = ""
    split: SplitConfig = SplitConfig()
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
    max_pixels: int = 50_000_000  # larger images are quarantined as possible decompression bombs
    pixel_stats_sample: int = 10000  # about this many images give the pixel mean/std; 0 = all


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    runner: str = "DirectRunner"
    direct_num_workers: int = 2
    # auto: worker processes (direct_num_workers) when the work repays their start-up, else in this process
    direct_running_mode: Literal["auto", "in_memory", "multi_threading", "multi_processing"] = "auto"
    extra_options: tuple[str, ...] = ()  # passed through verbatim, e.g. "--flink_master=host:8081"
    num_shards: int = 0  # 0 lets the runner choose
    files_per_task: int = 250  # files one worker call reads and checks: amortises Beam's per-element cost


@dataclasses.dataclass(frozen=True)
class SeverityConfig:
    """Whether each anomaly kind stops the pipeline ("block") or is only reported ("warn")."""

    empty_class: Literal["block", "warn"] = "block"
    too_few_images: Literal["block", "warn"] = "block"  # a class below validate.min_train_images_per_class
    undecodable_image: Literal["block", "warn"] = "block"
    class_missing_from_split: Literal["block", "warn"] = "block"
    class_missing_vs_schema: Literal["block", "warn"] = "block"
    new_class_vs_schema: Literal["block", "warn"] = "block"
    conflicting_labels: Literal["block", "warn"] = "warn"  # one content under two classes: all copies quarantined
    split_leakage: Literal["block", "warn"] = "warn"  # kept in one split only, so it is already fixed
    duplicate_in_split: Literal["block", "warn"] = "warn"
    class_imbalance: Literal["block", "warn"] = "warn"
    label_drift: Literal["block", "warn"] = "block"
    size_drift: Literal["block", "warn"] = "warn"
    channel_drift: Literal["block", "warn"] = "warn"


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Limits against the previous data version's statistics (see README, data validation)."""

    max_label_linf: float = 0.1  # L-infinity distance between per-split class distributions
    max_size_change: float = 0.25  # relative change of mean image height or width
    max_channel_linf: float = 0.1  # L-infinity distance between channel-count distributions


@dataclasses.dataclass(frozen=True)
class ValidateConfig:
    severity: SeverityConfig = SeverityConfig()
    drift: DriftConfig = DriftConfig()
    max_class_imbalance: float = 10.0  # largest / smallest class in the train split
    # Fewer train images than this in a class is too few to learn it (Google's AutoML Vision asks
    # for at least 10 images per label): the too_few_images anomaly, blocking by default.
    min_train_images_per_class: int = 10
    # A reviewed schema.pbtxt to check classes against; "" = the one accepted with
    # `visionpipe schema --accept` under run.root, if any.
    schema_path: str = ""
    max_listed_files: int = 50  # offending files listed per anomaly in the readable report


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
    image_size: tuple[int, int] = (28, 28)  # height, width fed to the model
    channels: Literal[1, 3] = 1
    # How images of another size are fitted (see models/preprocessing.py and the README):
    # stretch, pad (keep aspect, pad), crop (keep aspect, centre-crop), center_crop (central
    # crop_fraction, ImageNet-style). Images already at image_size are never resized.
    resize_policy: Literal["stretch", "pad", "crop", "center_crop"] = "stretch"
    crop_fraction: float = 0.875  # center_crop only


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"  # a registered model (models/registry.py)
    # The model's own keyword arguments, checked against its builder's signature when the
    # config loads, e.g. {width: 32, dropout: 0.25} for small_cnn (README: models).
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    # none: random initialisation; imagenet: Keras' pretrained weights (models that offer
    # them); or a path to a weights file (.weights.h5 or .h5), layers that do not fit skipped.
    weights: str = "none"


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
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd uses Nesterov momentum
    momentum: float = 0.9  # sgd
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
    # Mixed precision for accelerators (float16 on GPUs, bfloat16 on TPUs and some CPUs); the
    # saved and exported model is float32 either way.
    mixed_precision: Literal["off", "mixed_float16", "mixed_bfloat16"] = "off"
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
        for name in ("ema_epochs", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be 0 or more; got {getattr(self, name)}")
        if self.time_budget_minutes <= 0:
            raise ConfigError(f"train.time_budget_minutes must be positive; got {self.time_budget_minutes}")

    def peak_learning_rate(self) -> float:
        """learning_rate scaled to batch_size by learning_rate_scaling."""
        if self.learning_rate_scaling == "none":
            return self.learning_rate
        ratio = self.batch_size / self.learning_rate_batch
        return self.learning_rate * (ratio if self.learning_rate_scaling == "linear" else math.sqrt(ratio))


@dataclasses.dataclass(frozen=True)
class ThresholdConfig:
    """Your own limits, on top of the gate's default checks (beat the majority class, no class
    with recall 0, enough images: see EvaluateConfig). Each is recorded in the Blessing with its
    value and verdict; one left at None is "not set" (reported as such, never as passed)."""

    min_accuracy: float | None = None
    min_balanced_accuracy: float | None = None  # the mean of the per-class recalls
    min_top_k_accuracy: float | None = None
    min_class_recall: float | None = None  # for every class
    max_ece: float | None = None  # expected calibration error of the served (temperature-scaled) probabilities
    # Corruption name (CORRUPTIONS) -> the most accuracy it may lose at its strongest severity.
    max_corruption_drop: dict[str, float] = dataclasses.field(default_factory=dict)


# The common corruptions evaluate applies (components/evaluate/robustness.py implements each).
CORRUPTIONS = ("gaussian_noise", "blur", "brightness", "contrast", "jpeg", "downscale")


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    """Accuracy under common corruptions (three severities each) and an FGSM perturbation."""

    enabled: bool = True
    samples: int = 2000  # images of the evaluated split, drawn at random (seeded); 0 = all of them
    corruptions: tuple[str, ...] = CORRUPTIONS
    fgsm_epsilons: tuple[float, ...] = (0.004, 0.008, 0.016)  # in [0, 1] pixel units: about 1, 2 and 4 of 255


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """Non-regression against the model being served: the version last pushed to push.destination,
    re-scored on the same split in the same run. The first model (nothing pushed) skips it."""

    enabled: bool = True
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    max_drop: float = 0.0  # the candidate may score at most this much below the served model
    # Fail only when the bootstrap 95% interval of (candidate - served) lies wholly below -max_drop.
    significant_only: bool = False


@dataclasses.dataclass(frozen=True)
class SliceConfig:
    """Slices (class, source folder, original size, colour mode) far below the overall accuracy are flagged."""

    max_gap: float = 0.1  # flag a slice whose accuracy is more than this below the overall accuracy
    min_images: int = 20  # smaller slices are listed but never flagged (too noisy)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    top_k: int = 3
    # Test-time augmentation: average the predictions of the image and its mirror image, or
    # (flip_translate) also of 1-pixel shifts of both (airbench). Reported next to the plain figure.
    tta: Literal["none", "flip", "flip_translate"] = "none"
    thresholds: ThresholdConfig = ThresholdConfig()
    # The gate's default checks, always on: accuracy must beat always answering the most frequent
    # train class with its whole 95% interval, and every class with at least
    # ``min_images_per_class`` images in the evaluated split must have recall above 0 (else NOT
    # BLESSED). The verdict is INCONCLUSIVE (not exported or pushed without --override-gate)
    # when the split is too small to tell: the accuracy interval is wider than
    # ``max_interval_width``, a class has fewer than ``min_images_per_class`` images, the
    # interval reaches the majority rate, or the split is val (no separate test split).
    max_interval_width: float = 0.25
    min_images_per_class: int = 5
    baseline: BaselineConfig = BaselineConfig()
    bootstrap_resamples: int = 1000  # for the 95% intervals of accuracy and macro F1 (seeded by seed)
    # Fit a temperature on the val split; export builds it into every served model's probabilities.
    temperature_scaling: bool = True
    calibration_bins: int = 15
    slices: SliceConfig = SliceConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    gallery_images: int = 12  # the most confident mistakes shown with Grad-CAM; 0 = no gallery


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """Magnitude pruning (tfmot) of convolutions and dense layers, then full-integer int8."""

    enabled: bool = False
    target_sparsity: float = 0.75
    begin_step: int = 0
    end_step: int = 0  # 0 = at 80% of the fine-tuning steps
    frequency: int = 50  # steps between pruning updates
    skip_layers: tuple[str, ...] = ()  # layer names kept dense (the first convolution always is)
    min_weights: int = 1000  # layers with fewer weights are kept dense


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (keras.distillation): a small student learns from the trained
    model's softened predictions as well as from the labels."""

    student: str = ""  # a registered model name; "" = off
    student_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 5
    temperature: float = 3.0
    student_loss_weight: float = 0.5  # the labels' share of the loss; the teacher's is the rest
    learning_rate: float = 1e-3


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Pruning and quantization-aware training through tfmot (README: compression)."""

    prune: PruneConfig = PruneConfig()
    distill: DistillConfig = DistillConfig()
    qat: bool = False  # quantization-aware training, then full-integer int8
    # With prune and qat both on, QAT keeps the pruned zeros (tfmot's collaborative
    # optimization): one pruned + QAT file instead of two.
    preserve_sparsity: bool = True
    epochs: int = 2  # fine-tuning epochs on the train split, per technique
    steps_per_epoch: int = 0  # 0 = one pass over the train split
    batch_size: int = 64
    learning_rate: float = 1e-4
    timeout_seconds: int = 3600


@dataclasses.dataclass(frozen=True)
class ArtifactGate:
    max_accuracy_drop: float | None = None  # vs the Keras model; None = export.max_accuracy_drop
    max_size_kib: float | None = None  # None = no limit


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model_name: str = "visionpipe"
    tflite_float: bool = True
    tflite_float16: bool = False
    tflite_dynamic_int8: bool = False  # int8 weights, float activations: no calibration
    tflite_int8: bool = True  # full-integer, uint8 input, calibrated on train images
    onnx: bool = False  # Keras' own ONNX export, scored with onnxruntime (pip install visionpipe[onnx])
    calibration_samples: int = 256
    # Each artifact's gate: at most this accuracy drop against the Keras model on the
    # evaluated split (and at most a size, per artifact). An artifact that fails is recorded
    # with the reason and not pushed.
    max_accuracy_drop: float = 0.01
    # By export target name (components/export/targets.py; visionpipe.configure checks the keys).
    gates: dict[str, ArtifactGate] = dataclasses.field(default_factory=dict)
    latency: bool = True  # time batch-1 TFLite inference at 1 and 4 threads
    # The Python of tflite-support's own virtualenv, to embed TFLite metadata (labels,
    # normalisation) for the Task Library: auto = the project's .venv-tflite-support if set up
    # (make does), off, or a path.
    metadata_python: str = "auto"
    tta_flip: bool = False  # the exported SavedModel averages each image with its mirror image
    compression: CompressionConfig = CompressionConfig()


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's server-side batching (``batching.config``, ``--enable_batching``)."""

    enabled: bool = True
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000  # a partial batch waits at most this long for company
    num_batch_threads: int = 2  # about the cores the server may use
    max_enqueued_batches: int = 100
    allowed_batch_sizes: tuple[int, ...] = (8, 16, 32)  # increasing, ending at max_batch_size; () = any


@dataclasses.dataclass(frozen=True)
class PushConfig:
    destination: str = ""  # TF Serving models root: <destination>/<name>/<N>; "" = <run.root>/serving
    keep_versions: int = 5  # older versions are deleted, except those a label points at
    warmup_requests: int = 100  # records in assets.extra/tf_serving_warmup_requests (TF Serving reads <= 1000)
    # The new version gets the label canary; stable stays on the previous one until
    # `visionpipe promote`. Off: TF Serving serves the newest version (no labels).
    canary: bool = False
    # Where the server sees <destination> (base_path in models.config is <server_root>/<name>).
    # "" = the destination's own absolute path: right for a tensorflow_model_server or
    # `visionpipe serve` on this machine and for serve.sh / docker-compose.yml, which mount
    # the destination at the same path. Set it to the mount path elsewhere (k8s.yaml: /models).
    server_root: str = ""
    # Matches serve.sh's --allow_version_labels_for_unavailable_models: a new label may name
    # a version the server is still loading (needed when a label is set in the same config
    # change that adds its version).
    allow_labels_for_unavailable_versions: bool = True
    infra_timeout_seconds: int = 300  # the fresh-process warmup replay (and the real server check)
    # Also validate with a real TF Serving when tensorflow_model_server is on PATH or a Docker
    # daemon with the tensorflow/serving image answers; skipped (and recorded so) otherwise.
    real_server_check: bool = True
    batching: BatchingConfig = BatchingConfig()

    def __post_init__(self):
        # (TF Serving's own limits on warmup_requests and batching: serving/tf_serving_config.py.)
        if self.keep_versions < 1:
            raise ConfigError(f"push.keep_versions must be at least 1; got {self.keep_versions}")
        if self.infra_timeout_seconds <= 0:
            raise ConfigError(f"push.infra_timeout_seconds must be positive; got {self.infra_timeout_seconds}")


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """The optional tune stage: a KerasTuner search between validate and train (README: tuning)."""

    enabled: bool = False  # off: the graph is ingest -> validate -> train -> ...
    tuner: Literal["hyperband", "bayesian", "random"] = "hyperband"
    # Config key -> its range. Keys are dotted paths under model, train, input or
    # preprocessing (list items by index: train.augment.policy.1.magnitude); ranges are
    # {log: [lo, hi]}, {range: [lo, hi], step: optional}, {int: [lo, hi], step: optional} or
    # {choice: [a, b, ...]}. Checked against the config tree when the config loads.
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    objective: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    max_trials: int = 12
    max_epochs: int = 10  # per trial (Hyperband's largest bracket)
    executions_per_trial: int = 1
    max_seconds: float = 0.0  # wall-clock budget: no trial starts after it; 0 = none
    hyperband_factor: int = 3
    directory: str = ""  # "" = <run.root>/tuning; a folder every process of a distributed search shares


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Optional experiment tracking: every tune trial and train run logs its params, metrics and
    model to MLflow (``pip install visionpipe[tracking]``)."""

    mlflow_uri: str = ""  # "" = off; a local path (a file store), sqlite:///..., or an http(s):// server
    experiment: str = "visionpipe"


@dataclasses.dataclass(frozen=True)
class Config:
    run: RunConfig = RunConfig()
    seed: int = 42
    # manual: every setting as configured, defaults for the keys left out. auto: the train stage
    # chooses image size, model, batch size, epochs, augmentation and regularisation from what
    # ingest and validate measured and from train.time_budget_minutes (components/train/auto.py);
    # every key the YAML or an override sets keeps its value.
    recipe: Literal["manual", "auto"] = "manual"
    data: DataConfig = DataConfig()
    beam: BeamConfig = BeamConfig()
    validate: ValidateConfig = ValidateConfig()
    tune: TuneConfig = TuneConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    push: PushConfig = PushConfig()
    tracking: TrackingConfig = dataclasses.field(default=TrackingConfig(), metadata=OUTSIDE_KEY)  # rerun nothing
    # Filled by load_config, not set by hand: the dotted keys the YAML file and the overrides
    # gave (e.g. train.epochs, model.args.width), which recipe: auto leaves as they are.
    explicit: tuple[str, ...] = ()


def read_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), data: str | Path | None = None
) -> Config:
    """Reads a YAML file (if given), applies ``a.b=value`` overrides and type-checks the result
    against the tree. The checks that need the layers above (the models' registry, the search
    space, TF Serving's rules) are the application's: ``visionpipe.load_config`` runs them all.

    ``data`` (the CLI's ``--data``) is a folder of class sub-folders, in any layout ingest
    accepts, or a ``.csv``/``.jsonl`` manifest: it sets ``data.source`` and ``data.path`` over
    the YAML's, ``run.root`` defaults to ``visionpipe_runs/<its name>``, and without a YAML
    file the recipe is ``auto``. Any key the YAML or an override sets wins over those defaults.
    """
    config = build(Config, _given(path, overrides, data), "")
    if config.recipe == "auto" and not is_explicit(config.explicit, "preprocessing.channels"):
        # Ingest converts odd images to preprocessing.channels and measures the pixel statistics
        # in it before auto has seen the data: colour keeps every choice open (auto still trains
        # all-gray data in one channel).
        config = dataclasses.replace(config, preprocessing=dataclasses.replace(config.preprocessing, channels=3))
    train = config.train
    if train.learning_rate_scaling != "none" and train.learning_rate_batch <= 0:
        raise ConfigError(
            f"train.learning_rate_scaling is {train.learning_rate_scaling}: set train.learning_rate_batch to the "
            "global batch train.learning_rate was chosen for (e.g. 512)"
        )
    evaluate = config.evaluate
    for key, names in (
        ("evaluate.robustness.corruptions", evaluate.robustness.corruptions),
        ("evaluate.thresholds.max_corruption_drop", tuple(evaluate.thresholds.max_corruption_drop)),
    ):
        unknown = [name for name in names if name not in CORRUPTIONS]
        if unknown:
            raise ConfigError(f"unknown {key} entry {unknown[0]!r}; corruptions: {', '.join(CORRUPTIONS)}")
    _check_ranges(config)
    return config


def _given(path: str | Path | None, overrides: typing.Sequence[str], data: str | Path | None) -> dict[str, Any]:
    """The plain config that the YAML file, ``data`` and the overrides make, with ``explicit``:
    the keys the YAML and the overrides set."""
    from_file = _read_yaml(Path(path)) if path is not None else {}
    if "explicit" in from_file:  # a run's saved config.yaml: it says which keys its user set
        explicit = set(coerce(tuple[str, ...], from_file.pop("explicit"), "explicit"))
    else:
        explicit = set(_leaves(from_file, ""))
    merged = from_file
    if data is not None:
        defaults = _data_defaults(os.fspath(data), with_yaml=path is not None)
        merged = _merged(defaults, from_file)
        merged["data"].update(defaults["data"])  # --data names the data, over the YAML's
    for override in overrides:
        apply_override(merged, override)
        alone: dict[str, Any] = {}
        apply_override(alone, override)
        explicit.update(_leaves(alone, ""))
    return {**merged, "explicit": sorted(explicit)}


def is_explicit(explicit: typing.Iterable[str], key: str) -> bool:
    """Whether the user set ``key`` (a dotted path), a section holding it, or a key inside it."""
    return any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in explicit)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded or {}


def _leaves(tree: dict[str, Any], prefix: str) -> list[str]:
    """The dotted keys a YAML mapping sets; an empty mapping is a value itself (``args: {}``)."""
    keys = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        keys += _leaves(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, section by section (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


MANIFEST_SUFFIXES = (".csv", ".jsonl")


def _data_defaults(data: str, with_yaml: bool) -> dict[str, Any]:
    """What ``load_config(data=...)`` sets under the YAML: the source, where runs go, the recipe."""
    remote = "://" in data  # gs://, s3://: Beam's filesystems read them; a Path would mangle them
    if not remote and not Path(data).exists():
        raise ConfigError(f"data {data}: no such folder or manifest file")
    manifest = data.lower().endswith(MANIFEST_SUFFIXES) and (remote or Path(data).is_file())
    name = data.rstrip("/").rsplit("/", 1)[-1] if remote else Path(data).resolve().name
    defaults: dict[str, Any] = {
        "data": {"source": "manifest" if manifest else "folder", "path": data},
        "run": {"root": str(Path(RunConfig.root) / (name.rsplit(".", 1)[0] if manifest else name))},
    }
    if not with_yaml:
        defaults["recipe"] = "auto"
    return defaults


def _check_ranges(config: Config) -> None:
    """Settings whose out-of-range values would make a check meaningless (the gate's default
    checks can be tuned, never switched off by a value that lets anything through)."""
    split, evaluate = config.data.split, config.evaluate
    limits = (
        ("data.split.min_test_images", split.min_test_images, 0, None),
        ("data.split.min_test_per_class", split.min_test_per_class, 0, None),
        ("data.split.max_test_share", split.max_test_share, 0.0, 0.9),
        ("data.split.min_test_size", split.min_test_size, 0, None),
        ("validate.min_train_images_per_class", config.validate.min_train_images_per_class, 1, None),
        ("evaluate.min_images_per_class", evaluate.min_images_per_class, 1, None),
        ("evaluate.max_interval_width", evaluate.max_interval_width, 0.0, 1.0),
    )
    for key, value, low, high in limits:
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{key} must be {bounds}; got {value}")


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def serving_destination(config: Config) -> Path:
    """Where push publishes models for TF Serving: push.destination, else <run.root>/serving."""
    return Path(config.push.destination) if config.push.destination else Path(config.run.root).resolve() / "serving"
