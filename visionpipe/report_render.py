"""The run report: one self-contained HTML page and a Markdown summary of a run.

The page opens anywhere, with no network: figures are the Evaluation artifact's PNG files,
inlined as data URIs, and there is no script except a one-line check that every image
decoded (the browser test reads it). Sections, in the order a reviewer asks: the gate's
verdict, the model beside the trivial baselines (majority class, chance) and each check;
headline metrics with their 95% intervals; the data (validate's summary); training curves;
per-class figures and the confusion matrix; calibration; slices; robustness; the
most-confused pairs and the error gallery with its heat maps; the exported artifacts' accuracy,
size and latency; what was pushed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionpipe import report_labels
from visionpipe.components.common.html import CSS, esc, num, png_tag, table_of
from visionpipe.components.data_quality.report import quality_section, summary_line
from visionpipe.components.validate.summary import data_section
from visionpipe.pipeline.artifacts import DROP, RELABEL, Blessing, Evaluation, Examples
from visionpipe.pipeline.checks import Check, Outcome, read_check

_EXTRA_CSS = (
    ".fail{color:#b00020;font-weight:bold}.pass{color:#1b7d2a}.skip{color:#666}.warn{color:#a15c00;font-weight:bold}"
    ".flag{background:#fde7e9}td.num{text-align:right;font-variant-numeric:tabular-nums}"
)
# Sets data-images-ok on <body> once every image has decoded: what the browser test checks.
_IMAGE_CHECK = (
    "<script>addEventListener('load',()=>{const i=[...document.images];document.body.dataset.images="
    "i.length;document.body.dataset.imagesOk=i.filter(x=>x.complete&&x.naturalWidth>0).length})</script>"
)


@dataclasses.dataclass
class RunReport:
    """What the report shows; ``run_report`` gathers it from a run's artifacts."""

    title: str
    command: str
    evaluation_dir: Path
    metrics: dict
    blessing: dict
    split_stats: dict | None = None
    anomalies: list | None = None
    exported: dict | None = None  # export's artifacts.json
    pushed: dict | None = None  # push.json
    overrides: list = dataclasses.field(default_factory=list)  # (stage, {"gate", "reason"})
    data_quality: dict | None = None  # the DataQuality artifact's findings.json
    data_quality_dir: Path | None = None  # that artifact (its thumbnails)
    curation: dict | None = None  # the Examples' excluded/relabelled counts, their reasons and its folder


# How each check verdict and each Blessing verdict looks: a threshold left unset is grey, never green.
_CHECK_STYLE = {
    Outcome.PASSED: "pass",
    Outcome.FAILED: "fail",
    Outcome.INCONCLUSIVE: "warn",
    Outcome.NOT_CHECKED: "skip",
    Outcome.NOT_SET: "skip",
}
_VERDICT_STYLE = {"BLESSED": "pass", "NOT BLESSED": "fail", "INCONCLUSIVE": "warn"}


def verdict_of(blessing: dict) -> str:
    """The Blessing's verdict (one written before verdicts existed: from ``blessed``)."""
    return blessing.get("verdict") or ("BLESSED" if blessing["blessed"] else "NOT BLESSED")


def _threshold(check: Check) -> str:
    return str(Outcome.NOT_SET) if check.outcome is Outcome.NOT_SET else num(check.threshold)


def _gate(report: RunReport) -> str:
    blessing = report.blessing
    verdict = verdict_of(blessing)
    said = "every check passed" if verdict == "BLESSED" else "; ".join(blessing["reasons"])
    heading = f"<p class='{_VERDICT_STYLE[verdict]}'><b>{esc(verdict)}</b>: {esc(said)}</p>"
    checks = Blessing.checks_of(blessing)
    rows = [
        [esc(c.name), num(c.value), _threshold(c),
         f"<span class='{_CHECK_STYLE[c.outcome]}'>{esc(c.outcome)}</span>", esc(c.detail)]
        for c in checks
    ]  # fmt: skip
    overrides = "".join(
        f"<p class='fail'>Gate overridden at {esc(stage)}: {esc(o['gate'])}. Reason given: {esc(o['reason'])}</p>"
        for stage, o in report.overrides
    )
    table = table_of(["check", "value", "threshold", "verdict", "detail"], rows, [_row_style(c) for c in checks])
    baselines = "" if report_labels.is_multi_label(report.metrics) else _baselines_html(report.metrics)
    return heading + overrides + baselines + table


def _row_style(check: Check) -> str:
    return "skip" if check.outcome in (Outcome.NOT_SET, Outcome.NOT_CHECKED) else ""


def baseline_rows(metrics: dict) -> list[tuple[str, float, str]]:
    """(what, accuracy on the evaluated split, note): the model beside the trivial baselines."""
    if "trivial" not in metrics:  # an evaluation from before baselines were recorded
        return []
    trivial, intervals = metrics["trivial"], metrics["intervals"]
    majority = trivial["majority"]
    interval = "95% interval {:.4f}-{:.4f}"
    rows = [("the model: accuracy", metrics["accuracy"], interval.format(*intervals["accuracy"]))]
    if "balanced_accuracy" in intervals:
        rows.append(("the model: balanced accuracy (mean recall per class)", metrics["balanced_accuracy"],
                     interval.format(*intervals["balanced_accuracy"])))  # fmt: skip
    rows += [
        (f"always answering {majority['class']!r}", majority["accuracy"],
         f"the majority class: the most frequent in train ({majority['train_share']:.0%} of it)"),
        ("random guesses in train proportions", trivial["stratified"], "expected accuracy"),
        (f"chance (1/{len(metrics['classes'])})", trivial["chance"], ""),
    ]  # fmt: skip
    return rows


def _baselines_html(metrics: dict) -> str:
    rows = [[esc(what), num(value), esc(note)] for what, value, note in baseline_rows(metrics)]
    if not rows:
        return ""
    return f"<p>Against trivial baselines on the {esc(metrics['split'])} split:</p>" + table_of(
        ["", "accuracy", "note"], rows
    )


def _headline(metrics: dict) -> str:
    intervals = metrics["intervals"]
    rows = [
        ["accuracy", num(metrics["accuracy"]), "{} – {}".format(*(num(v) for v in intervals["accuracy"]))],
        ["macro F1", num(metrics["macro_f1"]), "{} – {}".format(*(num(v) for v in intervals["macro_f1"]))],
    ]
    if "balanced_accuracy" in intervals:
        ends = "{} – {}".format(*(num(v) for v in intervals["balanced_accuracy"]))
        rows.append(["balanced accuracy", num(metrics["balanced_accuracy"]), ends])
    if "top_k_accuracy" in metrics:
        rows.append([f"top-{metrics['top_k']} accuracy", num(metrics["top_k_accuracy"]), ""])
    for average, values in metrics["averages"].items():
        three = " / ".join(num(values[k]) for k in ("precision", "recall", "f1"))
        rows.append([f"{average} precision / recall / F1", three, ""])
    if "macro_roc_auc" in metrics:
        aucs = f"{num(metrics['macro_roc_auc'])} / {num(metrics['macro_pr_auc'])}"
        rows.append(["macro ROC-AUC / PR-AUC (one vs rest)", aucs, ""])
    if "tta" in metrics:
        rows.append([f"accuracy with {metrics['tta']['mode']} TTA (not served)", num(metrics["tta"]["accuracy"]), ""])
    if "baseline" in metrics:
        b = metrics["baseline"]
        difference = "difference {:+.4f} ({:+.4f} to {:+.4f})".format(b["difference"], *b["difference_interval"])
        rows.append([f"served model (version {b['version']}) {b['metric']}", num(b["baseline"]), difference])
    split = (
        f"{metrics['split']} split, {metrics['examples']:,} images; intervals from "
        f"{intervals['resamples']} bootstrap resamples"
    )
    return f"<p>{esc(split)}</p>" + table_of(["metric", "value", "95% interval"], rows)


def _per_class(metrics: dict, figures: Path) -> str:
    rows = [
        [
            esc(name),
            num(c["precision"]),
            num(c["recall"]),
            num(c["f1"]),
            c["support"],
            num(c["roc_auc"]),
            num(c["pr_auc"]),
        ]
        for name, c in metrics["per_class"].items()
    ]
    table = table_of(["class", "precision", "recall", "F1", "images", "ROC-AUC", "PR-AUC"], rows)
    return (
        png_tag(figures / Evaluation.PER_CLASS, "precision, recall and F1 per class")
        + f"<details><summary>Per-class table ({len(rows)} classes)</summary>{table}</details>"
        + "<h3>Confusion matrix</h3>"
        + png_tag(figures / Evaluation.CONFUSION_PNG, "confusion matrix")
        + f"<p>Counts: {esc(Evaluation.CONFUSION_CSV)} in {esc(str(figures))}</p>"
    )


def _calibration(metrics: dict, figures: Path) -> str:
    c = metrics["calibration"]
    rows = [["temperature", num(c["temperature"], 3), esc(c["fitted_on"])], ["ECE before", num(c["ece_before"]), ""]]
    if "ece_after" in c:
        rows += [["ECE after", num(c["ece_after"]), "what the exported models serve"],
                 ["NLL before / after", f"{num(c['nll_before'])} / {num(c['nll_after'])}", ""]]  # fmt: skip
    return table_of(["", "value", "note"], rows + _prior_correction_rows(metrics)) + png_tag(
        figures / Evaluation.RELIABILITY, "reliability diagram"
    )


def _prior_correction_rows(metrics: dict) -> list[list]:
    """evaluate.prior_correction's strength and what it changed on the evaluated split."""
    c = metrics.get("prior_correction")
    if c is None:
        return []
    was, split = c["without"], metrics["split"]
    return [
        ["prior correction strength", num(c["strength"], 1), esc(c["fitted_on"])],
        [f"{split} balanced accuracy without / with", f"{num(was['balanced_accuracy'])} / "
         f"{num(metrics['balanced_accuracy'])}", "the gate judges the corrected model, which export serves"],
        [f"{split} accuracy without / with", f"{num(was['accuracy'])} / {num(metrics['accuracy'])}", ""],
    ]  # fmt: skip


def _slices(metrics: dict) -> str:
    table = metrics["slices"]
    rows = sorted(table["slices"], key=lambda s: (not s["flagged"], s["feature"] == "class", -s["gap"]))
    cells = [[esc(s["feature"]), esc(s["slice"]), s["images"], num(s["accuracy"]), f"{-s['gap']:+.4f}",
              "flagged" if s["flagged"] else ""] for s in rows]  # fmt: skip
    uniform = (
        f"<p>One value only (nothing to compare): {esc(', '.join(table['uniform']))}.</p>" if table["uniform"] else ""
    )
    return (
        f"<p>Overall accuracy {num(table['overall'])}; a slice is flagged when it is more than the configured gap "
        f"below it with enough images.</p>{uniform}"
        + table_of(
            ["feature", "slice", "images", "accuracy", "vs overall", ""],
            cells,
            ["flag" if s["flagged"] else "" for s in rows],
        )  # fmt: skip
    )


ROBUSTNESS_SEVERITIES = (
    "Severities are relative to the image size, so they mean the same at any input size: blur's sigma is "
    "ImageNet-C's at 224 px scaled to this model's input (the value here after the '='), and downscale divides "
    "the resolution by 2, 3 and 4. Noise, brightness and contrast change pixel values alike at any size; JPEG "
    "works in 8x8-pixel blocks, so it is harsher on small images."
)


def _level(severity: dict) -> str:
    at_size = severity.get("at_this_size")
    return f"{severity['level']}" + (f" = {at_size}" if at_size else "")


def _robustness(metrics: dict, figures: Path) -> str:
    if "robustness" not in metrics:
        return "<p class='skip'>Not run (evaluate.robustness.enabled is false).</p>"
    r = metrics["robustness"]
    rows = [
        [esc(name), esc(entry["parameter"]), *(f"{num(s['accuracy'])} ({_level(s)})" for s in entry["severities"]),
         f"{-entry['drop_at_strongest']:+.4f}"]
        for name, entry in r["corruptions"].items()
    ]  # fmt: skip
    rows += [["FGSM", "epsilon (of 1)", *(f"{num(f['accuracy'])} ({f['epsilon']})" for f in r["fgsm"]), ""]]
    return (
        f"<p>On {r['images']:,} images; clean accuracy {num(r['clean_accuracy'])}.</p>"
        f"<p>{esc(ROBUSTNESS_SEVERITIES)}</p>"
        + table_of(["corruption", "parameter", "severity 1", "severity 2", "severity 3", "change at 3"], rows)
        + png_tag(figures / Evaluation.ROBUSTNESS, "accuracy by corruption severity and FGSM epsilon")
    )


def _errors(metrics: dict, figures: Path) -> str:
    pairs = [[esc(p["true"]), esc(p["predicted"]), p["images"], f"{p['share_of_true_class']:.1%}"]
             for p in metrics["most_confused"]]  # fmt: skip
    parts = ["<h3>Most-confused pairs</h3>", table_of(["true", "predicted as", "images", "share of true class"], pairs)]
    gallery = metrics.get("gallery")
    if gallery:
        parts.append("<h3>Most confident mistakes</h3>")
        parts.append(png_tag(figures / Evaluation.GALLERY, f"most confident mistakes with {gallery['method']}"))
        parts.append(table_of(["source", "true", "predicted", "confidence", "heat map"],
                            [[esc(e["source"]), esc(e["true"]), esc(e["predicted"]), num(e["confidence"], 3),
                              esc(e.get("heat", gallery["method"]))] for e in gallery["images"]]))  # fmt: skip
    return "".join(parts)


def _file_gate(name: str, row: dict, missing: str) -> str:
    """An exported file's gate as it reads ("passed", "failed: <reasons>"); ``missing`` for the
    reference row, which has none."""
    return str(read_check(name, row["gate"])) if "gate" in row else missing


def _exported(report: RunReport) -> str:
    if not report.exported:
        return "<p class='skip'>No export in this run.</p>"

    def kib(value):
        return num(value / 1024, 0) if value else "—"

    metric = _metric(report.metrics)
    rows = [
        [esc(name), num(r.get(metric)), kib(r.get("size_bytes")), kib(r.get("gzip_bytes")),
         num(r.get("p50_ms_1t"), 2), num(r.get("p50_ms_4t"), 2), esc(_file_gate(name, r, "reference"))]
        for name, r in report.exported.items()
    ]  # fmt: skip
    pushed = ""
    if report.pushed:
        pushed = f"<p>Pushed version {report.pushed['version']} to {esc(report.pushed['model_base_path'])}.</p>"
    headers = ["artifact", metric, "size (KiB)", "gzipped (KiB)", "p50 ms, 1 thread", "p50 ms, 4 threads", "gate"]
    return table_of(headers, rows) + pushed


def curation_line(curation: dict | None) -> str:
    """What data.exclude and data.relabel did to this run's data, and why ("" when nothing)."""
    if not curation or not (curation.get("excluded") or curation.get("relabelled")):
        return ""
    reasons = curation.get("reasons", {})

    def why(action: str) -> str:
        kinds = reasons.get(action, {})
        return " (" + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())) + ")" if kinds else ""

    return (
        f"Curation: {curation.get('excluded', 0):,} images left out by data.exclude{why(DROP)} and "
        f"{curation.get('relabelled', 0):,} relabelled{why(RELABEL)} before this run's ingest; each image "
        f"with its reason: {curation['path']}/{Examples.CURATION}. Your files are unchanged."
    )


def _data_quality(report: RunReport) -> str:
    curated = curation_line(report.curation)
    curated = f"<p>{esc(curated)}</p>" if curated else ""
    if report.data_quality is None or report.data_quality_dir is None:
        return curated + "<p class='skip'>No data_quality stage in this run.</p>"
    shown = report.data_quality["summary"].get("report_images", 24)
    return curated + quality_section(report.data_quality_dir, report.data_quality, shown)


def render_html(report: RunReport) -> str:
    figures, m = report.evaluation_dir, report.metrics
    data = (
        data_section(report.split_stats, report.anomalies or [])
        if report.split_stats is not None
        else "<p class='skip'>No validation statistics for this run.</p>"
    )
    curves = png_tag(figures / Evaluation.TRAINING_CURVES, "training and validation loss and accuracy")
    if report_labels.is_multi_label(m):
        sections = [
            ("Gate", _gate(report)),
            ("Metrics", report_labels.headline(m)),
            ("Data", data),
            ("Data quality", _data_quality(report)),
            ("Training curves", curves),
            ("Per label", report_labels.per_label(m, figures, report.split_stats)),
            ("Errors", report_labels.errors(m, figures)),
            ("Exported artifacts", _exported(report)),
        ]
    else:
        sections = [
            ("Gate", _gate(report)),
            ("Metrics", _headline(m)),
            ("Data", data),
            ("Data quality", _data_quality(report)),
            ("Training curves", curves),
            ("Per class", _per_class(m, figures)),
            ("Calibration", _calibration(m, figures)),
            ("Slices", _slices(m)),
            ("Robustness", _robustness(m, figures)),
            ("Errors", _errors(m, figures)),
            ("Exported artifacts", _exported(report)),
        ]
    body = "".join(
        f"<h2 id='{esc(title.lower().replace(' ', '-'))}'>{esc(title)}</h2>{html}" for title, html in sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(report.title)}</title>'
        f"<style>{CSS}{_EXTRA_CSS}</style>{_IMAGE_CHECK}</head><body><h1>{esc(report.title)}</h1>"
        f"<p><code>{esc(report.command)}</code></p>{body}</body></html>\n"
    )


def render_markdown(report: RunReport) -> str:
    """The same verdict and headline figures as Markdown (for a PR or a ticket)."""
    m, b = report.metrics, report.blessing
    multi_label = report_labels.is_multi_label(m)
    verdict = verdict_of(b)
    lines = [
        f"# {report.title}",
        "",
        f"`{report.command}`",
        "",
        f"**Gate: {verdict}**" + ("" if verdict == "BLESSED" else ": " + "; ".join(b["reasons"])),
        *(f"- gate overridden at {stage}: reason given: {o['reason']}" for stage, o in report.overrides),
        "",
    ]
    baselines = [] if multi_label else baseline_rows(m)
    if baselines:
        lines += [f"| on the {m['split']} split | accuracy | note |", "|---|---|---|"]
        lines += [f"| {what} | {value:.4f} | {note} |" for what, value, note in baselines]
        lines.append("")
    lines += [
        "| check | value | threshold | verdict |",
        "|---|---|---|---|",
        *(f"| {c.name} | {num(c.value)} | {_threshold(c)} | {c.outcome} |" for c in Blessing.checks_of(b)),
        "",
        *(report_labels.markdown_lines(m) if multi_label else _single_label_markdown(m)),
    ]
    if report.data_quality is not None:
        lines += ["", f"Data quality: {summary_line(report.data_quality['summary'])}"]
    if curation_line(report.curation):
        lines += ["", curation_line(report.curation)]
    if report.exported:
        metric = _metric(m)
        lines += ["", f"| artifact | {metric} | size (KiB) | gate |", "|---|---|---|---|"]
        lines += [f"| {n} | {num(r.get(metric))} | {r.get('size_bytes', 0) / 1024:.0f} | {_file_gate(n, r, '—')} |"
                  for n, r in report.exported.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def _metric(metrics: dict) -> str:
    """What the exported files are scored on: accuracy, or mAP for a multi-label model."""
    return "map" if report_labels.is_multi_label(metrics) else "accuracy"


def _single_label_markdown(m: dict) -> list[str]:
    low, high = m["intervals"]["accuracy"]
    lines = [
        f"{m['split']} accuracy {m['accuracy']:.4f} (95% CI {low:.4f}–{high:.4f}), macro F1 {m['macro_f1']:.4f} "
        f"on {m['examples']:,} images; ECE {m['calibration']['ece_served']:.4f} at temperature "
        f"{m['calibration']['temperature']:.3f}.",
    ]
    if m.get("prior_correction", {}).get("offsets"):
        c = m["prior_correction"]
        lines[-1] += (
            f" Prior correction at strength {c['strength']:.1f} (fitted on {c['fitted_on']}): balanced accuracy "
            f"{c['without']['balanced_accuracy']:.4f} without it, {m['balanced_accuracy']:.4f} with it."
        )
    if "robustness" in m:
        lines += ["", ROBUSTNESS_SEVERITIES, ""]
        lines += ["| corruption | strongest severity | accuracy | change |", "|---|---|---|---|"]
        lines += [f"| {n} | {_level(e['severities'][-1])} | {e['severities'][-1]['accuracy']:.4f} | "
                  f"{-e['drop_at_strongest']:+.4f} |" for n, e in m["robustness"]["corruptions"].items()]  # fmt: skip
    flagged = [s for s in m["slices"]["slices"] if s["flagged"]]
    if flagged:
        lines += [
            "",
            "Flagged slices: " + "; ".join(f"{s['feature']} {s['slice']} {s['accuracy']:.4f}" for s in flagged),
        ]
    return lines
