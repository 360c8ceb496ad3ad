"""validate's anomaly checks on made-up statistics: the ones a small photo set meets."""

from __future__ import annotations

from visionpipe.components.validate.anomalies import Findings, find_anomalies
from visionpipe.components.validate.config import ValidateConfig
from visionpipe.pipeline.artifacts import ABSENT, CARVED, GIVEN, TOO_SMALL


def split(**classes: int) -> dict:
    return {"count": sum(classes.values()), "classes": classes}


def findings(stats: dict[str, dict], origins: dict[str, str]) -> Findings:
    plan = {"conflicting_labels": [], "leakage": [], "duplicates_in_split": [], "origins": origins}
    return Findings(classes=["cat", "dog"], empty_classes=[], quarantine=[], plan=plan, split_stats=stats)


def test_a_class_with_too_few_train_images_blocks_and_says_how_many_to_add():
    stats = {"train": split(cat=40, dog=6), "val": split(cat=5, dog=1), "test": split(cat=10, dog=1)}
    found = {a.kind: a for a in find_anomalies(findings(stats, dict.fromkeys(stats, GIVEN)), ValidateConfig())}
    too_few = found["too_few_images"]
    assert too_few.severity == "block"
    # dog: 6 of its 8 images train; 10 train images need about 14 in all.
    assert too_few.items == ["dog: 6 train images (8 in all); add about 6 more"]
    assert "validate.min_train_images_per_class (10)" in too_few.message
    relaxed = ValidateConfig(min_train_images_per_class=5)
    assert "too_few_images" not in {
        a.kind for a in find_anomalies(findings(stats, dict.fromkeys(stats, GIVEN)), relaxed)
    }


def test_a_test_split_not_made_for_small_data_is_not_a_missing_split():
    stats = {"train": split(cat=30, dog=30), "val": split(cat=5, dog=5), "test": split()}
    origins = {"train": GIVEN, "val": GIVEN, "test": TOO_SMALL}
    assert find_anomalies(findings(stats, origins), ValidateConfig()) == []
    missing = find_anomalies(findings(stats, {**origins, "test": CARVED}), ValidateConfig())
    assert [a.kind for a in missing] == ["class_missing_from_split"]
    assert find_anomalies(findings(stats, {**origins, "test": ABSENT}), ValidateConfig()) == []
