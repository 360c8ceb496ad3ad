"""Serving drift: what the server was asked (the request log) against the training data.

The checks and limits are validate's (``validate.drift``), applied to serving traffic, since
training/serving skew is the same kind of change as drift between data versions:

- predicted classes: L-infinity distance between the share of each predicted class and the
  share of each class in the train split (``max_label_linf``). A model that sees the data it
  was trained on predicts roughly the training mix; a large distance means the traffic's
  classes moved, or the model fails on it.
- image sizes: relative change of the mean height and width (``max_size_change``); the model
  resizes everything, but a change of camera or source shows up here first.
- channels: L-infinity distance between the mixes of gray/colour/alpha images
  (``max_channel_linf``).

Each check is a ``pipeline.checks.Check`` named as validate names the drift (label_drift,
size_drift, channel_drift): passed, failed (drift), or inconclusive with fewer than
``min_images`` logged images, which the report says instead of giving a verdict.
"""

from __future__ import annotations

import collections
import dataclasses

from visionpipe.data.drift import DriftConfig, linf
from visionpipe.pipeline.checks import Check, Outcome, verdict

# How each outcome reads in the report: drift is what a failed check means here.
LABELS = {Outcome.PASSED: "ok", Outcome.FAILED: "drift", Outcome.INCONCLUSIVE: "too few images"}


@dataclasses.dataclass
class TrafficStats:
    """What the request log holds, summed up."""

    requests: int = 0
    images: int = 0
    predicted: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    channels: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sizes: int = 0  # images whose header could be read
    height_sum: float = 0.0
    width_sum: float = 0.0
    versions: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    first: float | None = None
    last: float | None = None

    @classmethod
    def of(cls, lines: list[dict]) -> TrafficStats:
        stats = cls()
        for line in lines:
            stats.requests += 1
            stats.versions[line.get("version")] += 1
            stats.predicted.update(line.get("predicted", []))
            stats.images += max(len(line.get("predicted", [])), len(line.get("images", [])))
            for image in line.get("images", []):
                if image:
                    stats.sizes += 1
                    stats.height_sum += image["height"]
                    stats.width_sum += image["width"]
                    stats.channels[str(image["channels"])] += 1
            t = line.get("time")
            if t is not None:
                stats.first = t if stats.first is None else min(stats.first, t)
                stats.last = t if stats.last is None else max(stats.last, t)
        return stats


def compare(traffic: TrafficStats, train: dict, limits: DriftConfig, min_images: int = 50) -> list[Check]:
    """``train``: the train split's statistics from the Statistics artifact's summary.json
    (``classes``, ``channels``, ``height``/``width`` with ``mean``)."""
    checks = []
    if sum(traffic.predicted.values()) < min_images:
        predictions = sum(traffic.predicted.values())
        checks.append(Check("label_drift", Outcome.INCONCLUSIVE, f"{predictions} predictions < {min_images}"))
    else:
        distance, cls = linf(dict(traffic.predicted), train["classes"])
        before = train["classes"].get(cls, 0) / max(sum(train["classes"].values()), 1)
        now = traffic.predicted.get(cls, 0) / sum(traffic.predicted.values())
        drift = distance > limits.max_label_linf
        checks.append(
            Check(
                "label_drift",
                _outcome(drift),
                f"predicted classes vs train labels: L-infinity {distance:.3f} "
                f"{'>' if drift else '<='} {limits.max_label_linf:g} "
                f"(class {cls}: {before:.1%} in training -> {now:.1%} predicted)",
            )
        )
    if traffic.sizes < min_images:
        checks.append(Check("size_drift", Outcome.INCONCLUSIVE, f"{traffic.sizes} image sizes logged < {min_images}"))
        checks.append(Check("channel_drift", Outcome.INCONCLUSIVE, f"{traffic.sizes} images logged < {min_images}"))
        return checks
    changes = []
    for dim, total in (("height", traffic.height_sum), ("width", traffic.width_sum)):
        old, new = train[dim]["mean"], total / traffic.sizes
        change = abs(new - old) / old if old else 0.0
        changes.append((change, f"mean {dim} {old:.1f} -> {new:.1f} px ({change:+.0%})"))
    worst = max(change for change, _ in changes)
    checks.append(
        Check(
            "size_drift",
            _outcome(worst > limits.max_size_change),
            f"{'; '.join(text for _, text in changes)}; limit {limits.max_size_change:.0%}",
        )
    )
    distance, count = linf(dict(traffic.channels), train["channels"])
    drift = distance > limits.max_channel_linf
    checks.append(
        Check(
            "channel_drift",
            _outcome(drift),
            f"channel mix L-infinity {distance:.3f} {'>' if drift else '<='} {limits.max_channel_linf:g}"
            + (f" (images with {count} channels moved most)" if drift else ""),
        )
    )
    return checks


def _outcome(drift: bool) -> Outcome:
    return Outcome.FAILED if drift else Outcome.PASSED


def drifted(checks: list[Check]) -> bool:
    """Whether the traffic drifted: the checks fail by the one rule (``pipeline.checks.verdict``)."""
    return verdict(checks)[0] is Outcome.FAILED


def report(traffic: TrafficStats, checks: list[Check], source: str) -> str:
    """The readable report ``visionpipe monitor`` prints."""
    import datetime

    def when(t):
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"

    versions = ", ".join(f"v{v}: {n}" for v, n in sorted(traffic.versions.items(), key=lambda kv: str(kv[0])))
    lines = [
        f"{traffic.requests} logged requests, {traffic.images} images, {when(traffic.first)} .. {when(traffic.last)}"
        f" (requests per version: {versions or '-'})",
        f"compared with the train split of {source}",
    ]
    width = max(len(c.name) for c in checks)
    for check in checks:
        lines.append(f"  {check.name:<{width}}  {LABELS[check.outcome].upper():<14}  {check.detail}")
    outcome, deciding = verdict(checks)
    lines.append(
        f"serving drift: {', '.join(c.name for c in deciding)}; check the traffic (and retrain on it if it is the "
        "new normal)"
        if outcome is Outcome.FAILED
        else "no serving drift"
        + (" detected, but some checks had too few images" if outcome is Outcome.INCONCLUSIVE else "")
    )
    return "\n".join(lines)
