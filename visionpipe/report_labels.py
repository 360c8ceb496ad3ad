"""The run report's sections for a multi-label model: mAP beside chance, each label's AP,
threshold and decisions, the labels seen together in the data, and the worst-decided images.

``report_render`` calls these in place of the single-label sections (accuracy, confusion
matrix, calibration by temperature, slices, robustness) when the evaluation is multi-label.
"""

from __future__ import annotations

from pathlib import Path

from visionpipe.components.common.html import esc, num, png_tag, table_of
from visionpipe.data import label_sets
from visionpipe.pipeline.artifacts import Evaluation


def is_multi_label(metrics: dict) -> bool:
    return "map" in metrics


def headline(metrics: dict) -> str:
    low, high = metrics["intervals"]["map"]
    fitted, half = metrics["at_thresholds"]["averages"], metrics["at_0.5"]["averages"]
    rows = [
        ["mAP (macro, over labels)", num(metrics["map"]), f"{num(low)} – {num(high)}"],
        ["chance mAP (each label's prevalence)", num(metrics["chance_map"]), "what a constant score gets"],
        ["micro mAP", num(metrics["micro_map"]), ""],
        [
            "micro F1 at the fitted thresholds / at 0.5",
            f"{num(fitted['micro']['f1'])} / {num(half['micro']['f1'])}",
            "",
        ],
        [
            "macro F1 at the fitted thresholds / at 0.5",
            f"{num(fitted['macro']['f1'])} / {num(half['macro']['f1'])}",
            "",
        ],
        ["subset accuracy (every label right)", num(metrics["accuracy"]), ""],
        ["Hamming loss (share of wrong decisions)", num(metrics["hamming_loss"]), ""],
    ]
    if "baseline" in metrics:
        b = metrics["baseline"]
        rows.append(
            [f"mAP of the served version {b['version']}", num(b["baseline"]), f"difference {b['difference']:+.4f}"]
        )
    said = f"{metrics['split']} split, {metrics['examples']:,} images; multi-label: {esc(metrics['not_run'])}"
    return f"<p>{said}</p>" + table_of(["metric", "value", "95% interval / note"], rows)


def per_label(metrics: dict, figures: Path, split_stats: dict | None) -> str:
    decided = metrics["at_thresholds"]["per_label"]
    thresholds = {t["label"]: t for t in metrics["thresholds"]}
    ece = metrics["calibration"]["ece_per_label"]
    rows = [
        [esc(name), num(metrics["average_precision"][name]), num(metrics["prevalence"][name]),
         num(thresholds[name]["threshold"], 3), esc(thresholds[name]["rule"]), num(c["precision"]), num(c["recall"]),
         num(c["f1"]), c["support"], num(ece[name])]
        for name, c in decided.items()
    ]  # fmt: skip
    headers = ["label", "AP", "prevalence", "threshold", "fitted by", "precision", "recall", "F1", "images", "ECE"]
    return (
        png_tag(figures / Evaluation.PER_CLASS, "precision, recall and F1 per label at the fitted thresholds")
        + table_of(headers, rows)
        + _cooccurrence(split_stats)
    )


def _cooccurrence(split_stats: dict | None) -> str:
    """The train split's label pairs: images carrying both, as a matrix."""
    train = (split_stats or {}).get("train", {})
    if "cooccurrence" not in train:
        return ""
    names = sorted(train["classes"])
    pairs = train["cooccurrence"]
    rows = [
        [esc(a)] + [train["classes"][a] if a == b else pairs.get(label_sets.encode((a, b)), 0) for b in names]
        for a in names
    ]
    return "<h3>Labels seen together (train images)</h3>" + table_of(["", *names], rows)


def errors(metrics: dict, figures: Path) -> str:
    gallery = metrics.get("gallery")
    if not gallery or not gallery["images"]:
        return "<p class='skip'>No mistakes to show.</p>"
    rows = [
        [esc(e["source"]), esc(", ".join(e["missed"]) or "—"), esc(", ".join(e["spurious"]) or "—"),
         esc(e.get("heat", gallery["method"]))]
        for e in gallery["images"]
    ]  # fmt: skip
    return (
        "<h3>Worst-decided images: missed and spurious labels</h3>"
        + png_tag(figures / Evaluation.GALLERY, f"worst-decided images with {gallery['method']}")
        + table_of(["source", "missed", "spurious", "heat map"], rows)
    )


def markdown_lines(metrics: dict) -> list[str]:
    low, high = metrics["intervals"]["map"]
    micro = metrics["at_thresholds"]["averages"]["micro"]
    lines = [
        f"{metrics['split']} mAP {metrics['map']:.4f} (95% CI {low:.4f}–{high:.4f}; "
        f"chance {metrics['chance_map']:.4f}), micro F1 {micro['f1']:.4f} at the fitted thresholds, "
        f"subset accuracy {metrics['accuracy']:.4f}, Hamming loss {metrics['hamming_loss']:.4f} "
        f"on {metrics['examples']:,} images.",
        "",
        "| label | AP | threshold | precision | recall | images |",
        "|---|---|---|---|---|---|",
    ]
    thresholds = {t["label"]: t["threshold"] for t in metrics["thresholds"]}
    for name, c in metrics["at_thresholds"]["per_label"].items():
        ap, decided = num(metrics["average_precision"][name]), f"{c['precision']:.4f} | {c['recall']:.4f}"
        lines.append(f"| {name} | {ap} | {thresholds[name]:.3f} | {decided} | {c['support']} |")
    return lines
