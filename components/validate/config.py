"""The ``validate`` section: which anomalies block and the limits that define them."""

from __future__ import annotations

import dataclasses
from typing import Literal

from visionpipe.data.drift import DriftConfig
from visionpipe.pipeline.typed_tree import check_range


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
    # Found after training by the data_quality stage: more than data_quality.max_leaked_share of
    # the val/test images have a near-copy (resized, recompressed) in an earlier split, so the
    # evaluation flatters the model. Blocking stops export and push until the copies are left
    # out (data.exclude with the stage's findings.csv) or this is set to warn.
    near_duplicate_leakage: Literal["block", "warn"] = "block"


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

    def __post_init__(self):
        check_range("validate.min_train_images_per_class", self.min_train_images_per_class, 1)
