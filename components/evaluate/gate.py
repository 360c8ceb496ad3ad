"""The gate: every check the Blessing records, each with its value, threshold and verdict,
and the Blessing's verdict from them.

The default checks are always on and cannot be made vacuous: accuracy must beat always
answering the most frequent train class (``trivial.py``) with its whole 95% interval, and
every class with enough images must have recall above zero; the evaluated split must be big
enough to tell (an interval no wider than ``evaluate.max_interval_width``, at least
``evaluate.min_images_per_class`` images per class) and held out (a test split, not the val
split training chose its epoch on). Your own limits come from ``evaluate.thresholds``; one
left unset is recorded as "not set", never as passed. The non-regression check compares the
candidate with the model being served (``baseline.py``), re-scored on the same images. A check
that cannot apply (top-k with two classes, no served model yet, a corruption that was not run)
is "not checked" with the reason.

Verdicts: any failed check -> NOT BLESSED; else any inconclusive one -> INCONCLUSIVE (too
few images to tell; export and push refuse it like NOT BLESSED unless overridden with a
reason); else BLESSED.
"""

from __future__ import annotations

from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.pipeline.artifacts import Verdict
from visionpipe.pipeline.checks import Check, Outcome
from visionpipe.pipeline.checks import verdict as checks_verdict

KEY = "evaluate.thresholds."


def compare(name: str, value: float, threshold: float | None, key: str, at_least: bool) -> Check:
    if threshold is None:
        return Check(name, Outcome.NOT_SET, f"{key} is not set", value, None)
    passed = value >= threshold if at_least else value <= threshold
    sign = (">=" if passed else "<") if at_least else ("<=" if passed else ">")
    return Check(
        name,
        Outcome.PASSED if passed else Outcome.FAILED,
        f"{name} {value:.4f} {sign} {key} {threshold}",
        value,
        threshold,
    )


def default_checks(result: dict, config: EvaluateConfig, no_test_split: str = "") -> list[Check]:
    """The checks every model faces. ``result`` holds the metrics with their intervals and the
    trivial baselines; ``no_test_split`` says why val was scored, when it was."""
    return [
        majority_check(result),
        zero_recall_check(result, config.min_images_per_class),
        class_images_check(result, config.min_images_per_class),
        interval_check(result, config.max_interval_width),
        held_out_check(result["split"], no_test_split),
    ]


def majority_check(result: dict) -> Check:
    """Accuracy against always answering the most frequent train class: failed at or below its
    rate, inconclusive when the 95% interval reaches it, passed when the whole interval is above."""
    majority = result["trivial"]["majority"]
    rate, answer = majority["accuracy"], majority["class"]
    accuracy = result["accuracy"]
    low, high = result["intervals"]["accuracy"]
    name = "accuracy vs always answering the majority class"
    always = f"always answering {answer!r} ({rate:.4f}; the most frequent class in train)"
    if accuracy <= rate:
        return Check(name, Outcome.FAILED, f"accuracy {accuracy:.4f} is no better than {always}", accuracy, rate)
    if low <= rate:
        return Check(
            name,
            Outcome.INCONCLUSIVE,
            f"accuracy {accuracy:.4f} is above {always}, but its 95% interval {low:.4f}-{high:.4f} "
            f"reaches it: too few images to tell them apart",
            accuracy,
            rate,
        )
    return Check(
        name,
        Outcome.PASSED,
        f"accuracy {accuracy:.4f} beats {always}: 95% interval {low:.4f}-{high:.4f}",
        accuracy,
        rate,
    )


def zero_recall_check(result: dict, min_images: int) -> Check:
    return recall_check(result["per_class"], min_images)


def recall_check(per_class: dict[str, dict], min_images: int, noun: str = "class", where: str = "") -> Check:
    """Every class (or label: ``noun``) with at least ``min_images`` images must be recognised at
    least once (``where``: at what, e.g. " at its threshold")."""
    judged = {name: c["recall"] for name, c in per_class.items() if c["support"] >= min_images}
    name = f"no {noun} with recall 0{where}"
    plural, some = ("classes", "class(es)") if noun == "class" else (f"{noun}s", f"{noun}(s)")
    if not judged:
        reason = f"no {noun} has evaluate.min_images_per_class ({min_images}) images to judge its recall"
        return Check(name, Outcome.INCONCLUSIVE, reason, None, 0.0)
    never = sorted(c for c, recall in judged.items() if recall == 0)
    lowest = min(judged.values())
    if never:
        return Check(
            name,
            Outcome.FAILED,
            f"the model never recognises {len(never)} {some} with enough images{where}: "
            + ", ".join(f"{c} (0 of {per_class[c]['support']})" for c in never[:10]),
            lowest,
            0.0,
        )
    skipped = len(per_class) - len(judged)
    return Check(
        name,
        Outcome.PASSED,
        f"lowest recall {lowest:.4f} among the {len(judged)} {plural} with at least {min_images} images"
        + (f" ({skipped} with fewer are not judged)" if skipped else ""),
        lowest,
        0.0,
    )


def class_images_check(result: dict, min_images: int) -> Check:
    support = {name: c["support"] for name, c in result["per_class"].items()}
    return images_check(support, min_images, result["split"])


def images_check(support: dict[str, int], min_images: int, split: str, noun: str = "class") -> Check:
    """Every class (or label: ``noun``) has ``min_images`` images in the evaluated split to judge it."""
    fewest = min(support.values())
    name = f"images per {noun} in the evaluated split"
    small = sorted((n, c) for c, n in support.items() if n < min_images)
    if small:
        listed = ", ".join(f"{c} {n}" for n, c in small[:10])
        plural = "class(es)" if noun == "class" else f"{noun}(s)"
        return Check(
            name,
            Outcome.INCONCLUSIVE,
            f"{len(small)} {plural} have fewer than evaluate.min_images_per_class ({min_images}) images in "
            f"the {split} split, too few to judge them: {listed}",
            fewest,
            min_images,
        )
    return Check(
        name, Outcome.PASSED, f"every {noun} has at least {min_images} images (fewest: {fewest})", fewest, min_images
    )


def interval_check(result: dict, max_width: float, metric: str = "accuracy", shown: str = "accuracy") -> Check:
    """The 95% interval of ``metric`` (called ``shown``) is no wider than ``max_width``."""
    low, high = result["intervals"][metric]
    width = high - low
    name = f"width of the {shown}'s 95% interval"
    where = f"{width:.4f} ({low:.4f}-{high:.4f}) on {result['examples']:,} images"
    if width > max_width:
        return Check(
            name,
            Outcome.INCONCLUSIVE,
            f"the {shown}'s 95% interval is {where}, wider than evaluate.max_interval_width {max_width}: "
            "too few images to tell; more images in the test split narrow it",
            width,
            max_width,
        )
    return Check(
        name, Outcome.PASSED, f"95% interval {where} <= evaluate.max_interval_width {max_width}", width, max_width
    )


def held_out_check(split: str, no_test_split: str) -> Check:
    name = "scored on a held-out test split"
    if split == "test":
        return Check(name, Outcome.PASSED, "scored on the test split, which training never saw", None, None)
    why = f"scored on {split} ({no_test_split or 'there is no test split'}), which training chose its kept epoch on"
    return Check(name, Outcome.INCONCLUSIVE, f"{why}: an optimistic figure", None, None)


def absolute_checks(result: dict, config: EvaluateConfig) -> list[Check]:
    """Your thresholds on accuracy, balanced accuracy, top-k, per-class recall, ECE and
    corruption drops; each one left unset is recorded as "not set"."""
    limits = config.thresholds
    checks = [
        compare("accuracy", result["accuracy"], limits.min_accuracy, KEY + "min_accuracy", at_least=True),
        compare(
            "balanced accuracy",
            result["balanced_accuracy"],
            limits.min_balanced_accuracy,
            KEY + "min_balanced_accuracy",
            at_least=True,
        ),
    ]
    if "top_k_accuracy" in result:
        top_k = f"top-{result['top_k']} accuracy"
        checks.append(
            compare(top_k, result["top_k_accuracy"], limits.min_top_k_accuracy, KEY + "min_top_k_accuracy", True)
        )
    else:
        reason = f"top-k needs more classes than evaluate.top_k, and there are {len(result['classes'])}"
        if limits.min_top_k_accuracy is None:
            checks.append(
                Check("top-k accuracy", Outcome.NOT_SET, f"{KEY}min_top_k_accuracy is not set ({reason})", None, None)
            )
        else:
            checks.append(Check("top-k accuracy", Outcome.NOT_CHECKED, reason, None, limits.min_top_k_accuracy))
    checks.append(_recall_threshold(result, limits.min_class_recall))
    checks.append(compare("ECE", result["calibration"]["ece_served"], limits.max_ece, KEY + "max_ece", False))
    return checks + _corruption_checks(result, limits.max_corruption_drop)


def _recall_threshold(result: dict, minimum: float | None) -> Check:
    recalls = {name: c["recall"] for name, c in result["per_class"].items()}
    weakest = min(recalls, key=recalls.__getitem__)
    check = compare(
        f"recall of class {weakest!r} (the lowest)", recalls[weakest], minimum, KEY + "min_class_recall", at_least=True
    )
    below = [f"{name} {value:.4f}" for name, value in recalls.items() if minimum is not None and value < minimum]
    if len(below) > 1:
        check.detail += f"; {len(below)} classes are below it: " + ", ".join(below[:10])
    return check


def _corruption_checks(result: dict, limits: dict[str, float]) -> list[Check]:
    corruptions = result.get("robustness", {}).get("corruptions", {})
    if not limits:
        worst = max((c["drop_at_strongest"] for c in corruptions.values()), default=None)
        return [
            Check(
                "accuracy drop under corruptions (strongest)",
                Outcome.NOT_SET,
                KEY + "max_corruption_drop is not set",
                worst,
                None,
            )
        ]
    checks = []
    for name, limit in limits.items():
        check = f"accuracy drop under {name} (strongest)"
        if name in corruptions:
            drop = corruptions[name]["drop_at_strongest"]
            checks.append(compare(check, drop, limit, f"{KEY}max_corruption_drop.{name}", at_least=False))
        else:
            checks.append(Check(check, Outcome.NOT_CHECKED, f"{name} was not run (evaluate.robustness)", None, limit))
    return checks


def baseline_check(comparison: dict | None, config: EvaluateConfig) -> Check:
    """Candidate vs served model: fails when the candidate is more than ``max_drop`` worse (and,
    with ``significant_only``, only when the whole 95% interval of the difference is)."""
    baseline = config.baseline
    metric = baseline.metric
    name = f"{metric} vs the served model"
    if not baseline.enabled:
        return Check(name, Outcome.NOT_CHECKED, "evaluate.baseline.enabled is false", None, None)
    if comparison is None:
        return Check(
            name, Outcome.NOT_CHECKED, "no model has been pushed yet: thresholds only", None, 0.0 - baseline.max_drop
        )
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
    return Check(name, Outcome.FAILED if worse else Outcome.PASSED, detail, difference, 0.0 - baseline.max_drop)


def verdict(checks: list[Check]) -> tuple[Verdict, list[str]]:
    """The Blessing's verdict by the one rule (``pipeline.checks.verdict``) and its reasons:
    the failed checks, else the inconclusive ones."""
    outcome, deciding = checks_verdict(checks)
    return Verdict.of(outcome), [c.detail for c in deciding] or ["every check passed"]


def blessing(checks: list[Check], model_uri: str) -> dict:
    found, reasons = verdict(checks)
    return {
        "verdict": found.value,
        "blessed": found is Verdict.BLESSED,
        "reasons": reasons,
        "checks": [c.as_dict() for c in checks],
        "not_checked": [f"{c.name}: {c.detail}" for c in checks if c.outcome is Outcome.NOT_CHECKED],
        # the config keys
        "not_set": [c.detail.split(" is not set")[0] for c in checks if c.outcome is Outcome.NOT_SET],
        "model_uri": model_uri,
    }


def gate_note(blessing: dict) -> str:
    verdict = blessing["verdict"]
    passed = [c["name"] for c in blessing["checks"] if c["outcome"] == Outcome.PASSED]
    said = (
        f"{verdict} (every check passed: {'; '.join(passed)})"
        if blessing["blessed"]
        else f"{verdict}: " + "; ".join(blessing["reasons"])
    )
    keys = [key.removeprefix(KEY) for key in blessing["not_set"]]
    not_set = f"; not set: {KEY.rstrip('.')} {', '.join(keys)}" if keys else ""
    return f"gate: {said}{not_set}" + "".join(f"; not checked: {s}" for s in blessing["not_checked"])
