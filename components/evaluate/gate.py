"""The gate: every check the Blessing records, each with its value, threshold and verdict.

Absolute checks come from ``evaluate.thresholds``; the non-regression check compares the
candidate with the model being served (``baseline.py``), re-scored on the same images. A
check that cannot apply (top-k with two classes, no served model yet, a corruption that was
not run) is recorded as "not checked" with the reason, never silently passed.
"""

from __future__ import annotations

import dataclasses

from visionpipe.pipeline.config import EvaluateConfig

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not checked"


@dataclasses.dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None
    verdict: str
    detail: str  # a sentence naming the config key, or why the check did not apply

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _compare(name: str, value: float, threshold: float, key: str, at_least: bool) -> Check:
    passed = value >= threshold if at_least else value <= threshold
    sign = (">=" if passed else "<") if at_least else ("<=" if passed else ">")
    return Check(name, value, threshold, PASSED if passed else FAILED, f"{name} {value:.4f} {sign} {key} {threshold}")


def absolute_checks(result: dict, config: EvaluateConfig) -> list[Check]:
    """Thresholds on accuracy, top-k, per-class recall, ECE and corruption drops."""
    limits, key = config.thresholds, "evaluate.thresholds."
    checks = [_compare("accuracy", result["accuracy"], limits.min_accuracy, key + "min_accuracy", at_least=True)]
    if "top_k_accuracy" in result:
        top_k = f"top-{result['top_k']} accuracy"
        checks.append(
            _compare(top_k, result["top_k_accuracy"], limits.min_top_k_accuracy, key + "min_top_k_accuracy", True)
        )
    else:
        reason = f"top-k needs more classes than evaluate.top_k, and there are {len(result['classes'])}"
        checks.append(Check("top-k accuracy", None, limits.min_top_k_accuracy, NOT_CHECKED, reason))
    recalls = {name: c["recall"] for name, c in result["per_class"].items()}
    weakest = min(recalls, key=recalls.get)
    recall = _compare(f"recall of class {weakest!r} (the lowest)", recalls[weakest], limits.min_class_recall,
                      key + "min_class_recall", at_least=True)  # fmt: skip
    below = [f"{name} {value:.4f}" for name, value in recalls.items() if value < limits.min_class_recall]
    if len(below) > 1:
        recall.detail += f"; {len(below)} classes are below it: " + ", ".join(below[:10])
    checks.append(recall)
    checks.append(_compare("ECE", result["calibration"]["ece_served"], limits.max_ece, key + "max_ece", False))
    corruptions = result.get("robustness", {}).get("corruptions", {})
    for name, limit in limits.max_corruption_drop.items():
        check = f"accuracy drop under {name} (strongest)"
        if name in corruptions:
            drop = corruptions[name]["drop_at_strongest"]
            checks.append(_compare(check, drop, limit, f"{key}max_corruption_drop.{name}", at_least=False))
        else:
            checks.append(Check(check, None, limit, NOT_CHECKED, f"{name} was not run (evaluate.robustness)"))
    return checks


def baseline_check(comparison: dict | None, config: EvaluateConfig) -> Check:
    """Candidate vs served model: fails when the candidate is more than ``max_drop`` worse (and,
    with ``significant_only``, only when the whole 95% interval of the difference is)."""
    baseline = config.baseline
    metric = baseline.metric
    name = f"{metric} vs the served model"
    if not baseline.enabled:
        return Check(name, None, None, NOT_CHECKED, "evaluate.baseline.enabled is false")
    if comparison is None:
        return Check(name, None, 0.0 - baseline.max_drop, NOT_CHECKED, "no model has been pushed yet: thresholds only")
    difference = comparison["difference"]
    low, high = comparison["difference_interval"]
    worse = difference < -baseline.max_drop
    if baseline.significant_only:
        worse = high < -baseline.max_drop
    served = f"served version {comparison['version']} {comparison['baseline']:.4f}"
    detail = (
        f"{metric} {comparison['candidate']:.4f} vs {served}: {difference:+.4f} (95% interval {low:+.4f} to "
        f"{high:+.4f}); evaluate.baseline.max_drop {baseline.max_drop}"
        + (", judged on the interval (significant_only)" if baseline.significant_only else "")
    )
    return Check(name, difference, 0.0 - baseline.max_drop, FAILED if worse else PASSED, detail)


def blessing(checks: list[Check], model_uri: str) -> dict:
    failed = [c.detail for c in checks if c.verdict == FAILED]
    return {
        "blessed": not failed,
        "reasons": failed or ["all checks passed"],
        "checks": [c.as_dict() for c in checks],
        "not_checked": [f"{c.name}: {c.detail}" for c in checks if c.verdict == NOT_CHECKED],
        "model_uri": model_uri,
    }
