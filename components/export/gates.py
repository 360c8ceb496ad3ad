"""Per-artifact gates and the table of every exported file.

An artifact passes when it loses at most ``max_accuracy_drop`` against the Keras model on the
evaluated split (accuracy; mAP for multi-label models) and, if a size limit is set for it, is
no larger; ``export.gates.<name>``
overrides either limit for one artifact. The outcome and its reason go into the artifact's
row as a ``pipeline.checks.Check`` record; push publishes only the files that passed.
"""

from __future__ import annotations

from visionpipe.components.export.config import ArtifactGate, ExportConfig
from visionpipe.components.export.targets import BY_NAME
from visionpipe.pipeline.checks import Check, Outcome, read_check


def check_gates(results: dict[str, dict], config: ExportConfig, metric: str = "accuracy") -> None:
    """Adds ``gate`` (a ``Check`` record: passed, or failed with the reasons) and ``drop`` (of
    ``metric``, each row's score) to every artifact's row."""
    reference = results["keras"][metric]
    for name, row in results.items():
        # keras is the reference; a file not made has its gate; an ungated target has none
        if name == "keras" or metric not in row or not BY_NAME[name].gated:
            continue
        gate = config.gates.get(name, ArtifactGate())
        max_drop = config.max_accuracy_drop if gate.max_accuracy_drop is None else gate.max_accuracy_drop
        row["drop"] = round(reference - row[metric], 6)
        reasons = []
        if row["drop"] > max_drop:
            reasons.append(f"{metric} drop {row['drop']:.4f} > {max_drop:g}")
        if gate.max_size_kib is not None and row.get("size_bytes", 0) / 1024 > gate.max_size_kib:
            reasons.append(f"size {row['size_bytes'] / 1024:.0f} KiB > {gate.max_size_kib:g} KiB")
        row["gate"] = Check(name, Outcome.FAILED if reasons else Outcome.PASSED, "; ".join(reasons)).as_dict()


def gate_of(name: str, row: dict) -> Check | None:
    """The gate check in an artifact's row (one written before records too), or None for the
    reference row, which has none."""
    return read_check(name, row["gate"]) if "gate" in row else None


def _gate_text(name: str, row: dict) -> str:
    check = gate_of(name, row)
    return "-" if check is None else str(check)


def _pruning_text(name: str) -> str:
    target = BY_NAME.get(name)  # (the keras reference row has no target)
    return target.pruning if target is not None and target.pruning else "-"


def table(results: dict[str, dict], split: str, metric: str = "accuracy") -> str:
    """One Markdown table of every artifact: its score (``metric``), drop, sizes, sparsity, what
    its pruning buys at run time, latency, whether the Task Library runs it (TFLite files, when
    tflite-support is set up), gate."""
    columns = [f"{split} {metric}", "drop", "size KiB", "gzipped KiB", "zeros", "pruning", "p50 ms 1t", "p95 ms 1t",
               "p50 ms 4t", "Task Library"]  # fmt: skip
    lines = ["| artifact | " + " | ".join(columns) + " | gate |", "|---" * (len(columns) + 2) + "|"]
    for name, r in results.items():

        def cell(key: str, scale: float = 1.0, fmt: str = ".1f", r=r) -> str:
            return format(r[key] / scale, fmt) if key in r else "-"

        lines.append(
            f"| {name} | {cell(metric, fmt='.4f')} | {cell('drop', fmt='.4f')} | "
            f"{cell('size_bytes', 1024, '.0f')} | {cell('gzip_bytes', 1024, '.0f')} | {cell('sparsity', fmt='.0%')} | "
            f"{_pruning_text(name)} | {cell('p50_ms_1t', fmt='.2f')} | "
            f"{cell('p95_ms_1t', fmt='.2f')} | {cell('p50_ms_4t', fmt='.2f')} | {r.get('task_library', '-')} | "
            f"{_gate_text(name, r)} |"
        )
    return "\n".join(lines)
