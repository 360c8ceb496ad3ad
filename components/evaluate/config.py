"""The ``evaluate`` section: the gate's checks and limits, calibration, slices and robustness."""

from __future__ import annotations

import dataclasses
from typing import Literal

from visionpipe.pipeline.typed_tree import ConfigError, check_range

# The common corruptions evaluate applies (components/evaluate/robustness.py implements each).
CORRUPTIONS = ("gaussian_noise", "blur", "brightness", "contrast", "jpeg", "downscale")


def _check_corruptions(key: str, names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f"unknown {key} entry {unknown[0]!r}; corruptions: {', '.join(CORRUPTIONS)}")


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
    min_map: float | None = None  # multi-label: mean average precision over the labels (macro)
    min_label_ap: float | None = None  # multi-label: for every label with images in the split
    # Corruption name (CORRUPTIONS) -> the most accuracy it may lose at its strongest severity.
    max_corruption_drop: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_corruptions("evaluate.thresholds.max_corruption_drop", tuple(self.max_corruption_drop))


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    """Accuracy under common corruptions (three severities each) and an FGSM perturbation."""

    enabled: bool = True
    samples: int = 2000  # images of the evaluated split, drawn at random (seeded); 0 = all of them
    corruptions: tuple[str, ...] = CORRUPTIONS
    fgsm_epsilons: tuple[float, ...] = (0.004, 0.008, 0.016)  # in [0, 1] pixel units: about 1, 2 and 4 of 255

    def __post_init__(self):
        _check_corruptions("evaluate.robustness.corruptions", self.corruptions)


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
    # Imbalanced classes: fit on val how much of the train split's class prior to take out of the
    # served logits (logit adjustment, components/common/prior_correction.py), for the best val
    # balanced accuracy; export builds the offsets into every served model. It trades some accuracy
    # on the frequent classes for recall on the rare ones. Single-label data only.
    prior_correction: bool = False
    # The strength to use instead of fitting one (1.0 is the Bayes rule for balanced classes).
    prior_strength: float | None = None
    calibration_bins: int = 15
    slices: SliceConfig = SliceConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    gallery_images: int = 12  # the most confident mistakes shown with Grad-CAM; 0 = no gallery
    # Multi-label: each label's decision threshold is fitted on val: the best F1, or, with
    # ``target_precision`` set, the lowest threshold whose val precision reaches it.
    target_precision: float | None = None
    # A label carried by fewer val images keeps the threshold 0.5 (a fitted one would follow noise).
    min_threshold_images: int = 10

    def __post_init__(self):
        check_range("evaluate.min_images_per_class", self.min_images_per_class, 1)
        check_range("evaluate.max_interval_width", self.max_interval_width, 0.0, 1.0)
        if self.prior_strength is not None:
            check_range("evaluate.prior_strength", self.prior_strength, 0.0, 5.0)
        if self.target_precision is not None:
            check_range("evaluate.target_precision", self.target_precision, 0.0, 1.0)
