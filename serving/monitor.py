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

With fewer than ``min_images`` logged images a check says so instead of giving a verdict.
"""

from __future__ import annotations

import collections
import dataclasses

from visionpipe.data.image_stats import linf
from visionpipe.pipeline.config import DriftConfig

OK, DRIFT, TOO_FEW = "ok", "drift", "too few images"


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


@dataclasses.dataclass
class Check:
    kind: str  # label_drift | size_drift | channel_drift, as validate names them
    verdict: str  # OK | DRIFT | TOO_FEW
    detail: str


def compare(traffic: TrafficStats, train: dict, limits: DriftConfig, min_images: int = 50) -> list[Check]:
    """``train``: the train split's statistics from the Statistics artifact's summary.json
    (``classes``, ``channels``, ``height``/``width`` with ``mean``)."""
    checks = []
    if sum(traffic.predicted.values()) < min_images:
        checks.append(Check("label_drift", TOO_FEW, f"{sum(traffic.predicted.values())} predictions < {min_images}"))
    else:
        distance, cls = linf(dict(traffic.predicted), train["classes"])
        before = train["classes"].get(cls, 0) / max(sum(train["classes"].values()), 1)
        now = traffic.predicted.get(cls, 0) / sum(traffic.predicted.values())
        verdict = DRIFT if distance > limits.max_label_linf else OK
        checks.append(
            Check(
                "label_drift",
                verdict,
                f"predicted classes vs train labels: L-infinity {distance:.3f} "
                f"{'>' if verdict == DRIFT else '<='} {limits.max_label_linf:g} "
                f"(class {cls}: {before:.1%} in training -> {now:.1%} predicted)",
            )
        )
    if traffic.sizes < min_images:
        checks.append(Check("size_drift", TOO_FEW, f"{traffic.sizes} image sizes logged < {min_images}"))
        checks.append(Check("channel_drift", TOO_FEW, f"{traffic.sizes} images logged < {min_images}"))
        return checks
    changes = []
    for dim, total in (("height", traffic.height_sum), ("width", traffic.width_sum)):
        old, new = train[dim]["mean"], total / traffic.sizes
        change = abs(new - old) / old if old else 0.0
        changes.append((change, f"mean {dim} {old:.1f} -> {new:.1f} px ({change:+.0%})"))
    worst = max(change for change, _ in changes)
    verdict = DRIFT if worst > limits.max_size_change else OK
    checks.append(
        Check(
            "size_drift",
            verdict,
            f"{'; '.join(text for _, text in changes)}; limit {limits.max_size_change:.0%}",
        )
    )
    distance, count = linf(dict(traffic.channels), train["channels"])
    verdict = DRIFT if distance > limits.max_channel_linf else OK
    checks.append(
        Check(
            "channel_drift",
            verdict,
            f"channel mix L-infinity {distance:.3f} {'>' if verdict == DRIFT else '<='} {limits.max_channel_linf:g}"
            + (f" (images with {count} channels moved most)" if verdict == DRIFT else ""),
        )
    )
    return checks


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
    width = max(len(c.kind) for c in checks)
    for check in checks:
        lines.append(f"  {check.kind:<{width}}  {check.verdict.upper():<14}  {check.detail}")
    drifted = [c.kind for c in checks if c.verdict == DRIFT]
    lines.append(
        f"serving drift: {', '.join(drifted)}; check the traffic (and retrain on it if it is the new normal)"
        if drifted
        else "no serving drift"
        + (" detected, but some checks had too few images" if any(c.verdict == TOO_FEW for c in checks) else "")
    )
    return "\n".join(lines)
