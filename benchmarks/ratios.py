"""How every benchmark reports: per-repeat rates collected side by side, then medians and ratios;
latency percentiles.

Each contender's rate is kept per repeat; the table shows the median over repeats and its
ratio to each baseline measured in the same run, because on a shared, noisy machine only
same-run ratios mean anything.
"""

from __future__ import annotations

import statistics


class Rates:
    """Rates (higher is better) of named contenders over interleaved repeats."""

    def __init__(self, unit: str = "images/s"):
        self.unit = unit
        self.per_repeat: dict[str, list[float]] = {}

    def add_repeat(self, repeat: int, measured: dict[str, float]) -> None:
        for name, value in measured.items():
            self.per_repeat.setdefault(name, []).append(value)
        print(
            f"repeat {repeat + 1}: " + ", ".join(f"{name} {value:,.0f}" for name, value in measured.items()), flush=True
        )

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.per_repeat.items()}

    def table(self, baselines: dict[str, str]) -> str:
        """Median of every contender and its ratio to each baseline (column title -> contender)."""
        median = self.medians()
        width = max(len(name) for name in [*median, "contender"]) + 2
        columns = {title: max(len(title), 8) for title in baselines}
        header = f"{'contender':<{width}} {self.unit:>10}" + "".join(f"  {t:>{w}}" for t, w in columns.items())
        lines = [header]
        for name, rate in median.items():
            ratios = "".join(f"  {rate / median[baselines[t]]:>{w - 1}.2f}x" for t, w in columns.items())
            lines.append(f"{name:<{width}} {rate:>10,.0f}{ratios}")
        return "\n".join(lines)


def p50_p99(latencies: list[float]) -> tuple[float, float]:
    """The median and 99th percentile of ``latencies`` (nearest rank; NaN when there are none)."""
    ordered = sorted(latencies)
    if not ordered:
        return float("nan"), float("nan")
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
