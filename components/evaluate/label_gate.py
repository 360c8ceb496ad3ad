"""The gate's checks for multi-label models: the same rules as ``gate.py``, on mAP and per label.

Always on: mAP must beat the chance level (a constant score per label has an AP equal to the
label's prevalence, so chance mAP is their mean) with its whole 95% interval; every label with
at least ``evaluate.min_images_per_class`` images carrying it must be found at least once at its
threshold; every label must have that many images to be judged; the mAP interval must be no
wider than ``evaluate.max_interval_width``; the split must be held out. Your limits
(``evaluate.thresholds.min_map``, ``min_label_ap``) are "not set" until you set them; the
served model is compared on mAP.
"""

from __future__ import annotations

from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.components.evaluate.gate import KEY, compare, held_out_check, images_check, interval_check, recall_check
from visionpipe.pipeline.checks import Check, Outcome


def default_checks(result: dict, config: EvaluateConfig, no_test_split: str) -> list[Check]:
    return [
        chance_check(result),
        recall_check(result["at_thresholds"]["per_label"], config.min_images_per_class, "label", " at its threshold"),
        images_check(
            {name: c["support"] for name, c in result["at_thresholds"]["per_label"].items()},
            config.min_images_per_class,
            result["split"],
            noun="label",
        ),
        interval_check(result, config.max_interval_width, metric="map", shown="mAP"),
        held_out_check(result["split"], no_test_split),
    ]


def chance_check(result: dict) -> Check:
    value, chance = result["map"], result["chance_map"]
    low, high = result["intervals"]["map"]
    name = "mAP vs chance (each label's prevalence)"
    if value <= chance:
        return Check(name, Outcome.FAILED, f"mAP {value:.4f} is no better than chance {chance:.4f}", value, chance)
    if low <= chance:
        detail = f"mAP {value:.4f} is above chance {chance:.4f}, but its 95% interval {low:.4f}-{high:.4f} reaches it"
        return Check(name, Outcome.INCONCLUSIVE, detail + ": too few images to tell", value, chance)
    return Check(
        name,
        Outcome.PASSED,
        f"mAP {value:.4f} beats chance {chance:.4f}: 95% interval {low:.4f}-{high:.4f}",
        value,
        chance,
    )


def absolute_checks(result: dict, config: EvaluateConfig) -> list[Check]:
    limits = config.thresholds
    aps = {name: ap for name, ap in result["average_precision"].items() if ap is not None}
    weakest = min(aps, key=aps.__getitem__)
    return [
        compare("mAP", result["map"], limits.min_map, KEY + "min_map", at_least=True),
        compare(
            f"AP of label {weakest!r} (the lowest)",
            aps[weakest],
            limits.min_label_ap,
            KEY + "min_label_ap",
            at_least=True,
        ),
    ]


def baseline_check(comparison: dict | None, config: EvaluateConfig) -> Check:
    """Candidate vs served model on mAP, by ``evaluate.baseline``'s rules."""
    name = "mAP vs the served model"
    baseline = config.baseline
    if not baseline.enabled:
        return Check(name, Outcome.NOT_CHECKED, "evaluate.baseline.enabled is false", None, None)
    if comparison is None:
        return Check(
            name, Outcome.NOT_CHECKED, "no model has been pushed yet: thresholds only", None, -baseline.max_drop
        )
    difference = comparison["difference"]
    low, high = comparison["difference_interval"]
    worse = (high if baseline.significant_only else difference) < -baseline.max_drop
    detail = (
        f"mAP {comparison['candidate']:.4f} vs served version {comparison['version']} {comparison['baseline']:.4f}: "
        f"{difference:+.4f} (95% interval {low:+.4f} to {high:+.4f}); evaluate.baseline.max_drop {baseline.max_drop}"
    )
    return Check(name, Outcome.FAILED if worse else Outcome.PASSED, detail, difference, 0.0 - baseline.max_drop)
