"""Drift between two versions of the data: the limits (``validate.drift``, also the monitor's) and
the distance between two count distributions."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Limits against the previous data version's statistics (see README, data validation)."""

    max_label_linf: float = 0.1  # L-infinity distance between per-split class distributions
    max_size_change: float = 0.25  # relative change of mean image height or width
    max_channel_linf: float = 0.1  # L-infinity distance between channel-count distributions


def linf(a: dict[str, int], b: dict[str, int]) -> tuple[float, str]:
    """L-infinity distance between two count distributions, and the key that moved most."""
    total_a, total_b = max(sum(a.values()), 1), max(sum(b.values()), 1)
    moves = {k: abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in set(a) | set(b)}
    key = max(sorted(moves), key=moves.__getitem__) if moves else ""
    return (moves[key] if moves else 0.0), key
