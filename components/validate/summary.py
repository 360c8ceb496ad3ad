"""Human-readable data-validation summary: one self-contained HTML page.

The validate stage writes machine-readable statistics and anomaly protos; this module turns the
same numbers into a page a person can open from the run directory (or attach to a ticket) to see
why a run was blocked: per-split tables, a class histogram, an image-size heatmap, the
anomalies with their offending files, and the train pixel mean/std. Plots are embedded as base64
PNGs so the file has no external assets and needs no JavaScript.
"""

from __future__ import annotations

import base64
import bisect
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from visionpipe.components.common.html import CSS, esc, plain
from visionpipe.data import label_sets

# Lower edges of the size buckets written by the stats stage (see size_buckets).
SIZE_EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
MAX_ITEMS = 50  # offending items listed per anomaly; the rest are only counted
MANY_CLASSES = 60  # above this, grouped bars become unreadable: switch to sorted stacked bars
DPI = 80
MAX_PAIRS = 10  # co-occurring label pairs listed per split


def _counts(counter: dict) -> str:
    """'JPEG 10, PNG 2', largest first, so the dominant value is read first."""
    items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ", ".join(f"{k} {v}" for k, v in items) or "—"


def _png(fig: Figure, alt: str) -> str:
    """Render a figure with Agg (no pyplot, no GUI) and return an <img> tag with a data URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _verdict(anomalies: list[dict]) -> str:
    blocking = sum(a.get("severity") == "block" for a in anomalies)
    warnings = len(anomalies) - blocking
    warn_text = f"{warnings} warning{'s' if warnings != 1 else ''}"
    if blocking:
        noun = "anomaly" if blocking == 1 else "anomalies"
        return f'<p class="block"><b>BLOCKED: {blocking} blocking {noun}</b> ({warn_text})</p>'
    return f'<p class="ok"><b>OK</b> ({warn_text})</p>'


def _dim(stats: dict, name: str, count: int) -> str:
    d = stats.get(name) or {}
    if not count:
        return "—"  # min/max are 0 for an empty split: showing "0–0" would look like a bug
    return f"{d.get('min', 0)}–{d.get('max', 0)} (mean {d.get('mean', 0):.1f}, std {d.get('std', 0):.1f})"


def _split_table(split: str, stats: dict) -> str:
    count = stats.get("count", 0)
    rows = [
        ("images", count),
        ("classes", len(stats.get("classes") or {})),
        ("converted", stats.get("converted", 0)),
        ("duplicates", stats.get("duplicates", 0)),
        ("height (px)", _dim(stats, "height", count)),
        ("width (px)", _dim(stats, "width", count)),
        ("formats", _counts(stats.get("formats") or {})),
        ("original modes", _counts(stats.get("modes") or {})),
        ("channels", _counts(stats.get("channels") or {})),
    ]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<h3>{esc(split)}</h3><table>{body}</table>"


def _empty_plot(message: str) -> str:
    fig = Figure(figsize=(6, 1.5))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return _png(fig, message)


def _class_plot(split_stats: dict[str, dict]) -> str:
    # Empty splits are in the tables; here they would only add blank bars and a legend entry.
    splits = [s for s in split_stats if split_stats[s].get("classes")]
    counts = {s: split_stats[s].get("classes") or {} for s in splits}
    classes = sorted({c for per in counts.values() for c in per})
    if not classes:
        return _empty_plot("No images: nothing to plot.")
    matrix = np.array([[counts[s].get(c, 0) for s in splits] for c in classes])
    many = len(classes) > MANY_CLASSES
    if many:  # sorted by total so imbalance is visible at a glance; every class is still shown
        order = np.argsort(-matrix.sum(axis=1), kind="stable")
        classes, matrix = [classes[i] for i in order], matrix[order]
    # Height grows with the class count so labels never overlap, whatever the dataset.
    per_class = 0.2 if many else 0.12 * len(splits) + 0.1
    fig = Figure(figsize=(9, max(2.5, 1.2 + per_class * len(classes))), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(classes))
    if many:
        left = np.zeros(len(classes))
        for j, split in enumerate(splits):
            ax.barh(y, matrix[:, j], left=left, height=0.8, label=plain(split))
            left += matrix[:, j]
        for yi, total in enumerate(left):  # y is 0, 1, ...
            ax.text(total, yi, f" {int(total)}", va="center", fontsize=7)
        ax.set_title("Images per class (all splits stacked, sorted by total)")
    else:
        height = 0.8 / len(splits)
        for j, split in enumerate(splits):
            bars = ax.barh(y - 0.4 + height * (j + 0.5), matrix[:, j], height=height, label=plain(split))
            ax.bar_label(bars, labels=[str(v) if v else "" for v in matrix[:, j]], padding=2, fontsize=7)
        ax.set_title("Images per class and split")
    ax.set_yticks(y, [plain(c) for c in classes], fontsize=7)
    ax.set_ylim(len(classes) - 0.5, -0.5)  # first class at the top, like the tables
    # Explicit limit, not margins(): bar sticky edges at 0 cancel x margins, clipping labels.
    ax.set_xlim(0, max(1, matrix.sum(axis=1).max() if many else matrix.max()) * 1.1)
    ax.set_xlabel("images")
    ax.legend(loc="best", fontsize=8)
    return _png(fig, f"Images per class for {len(classes)} classes; exact numbers in the table below.")


def _class_table(split_stats: dict[str, dict]) -> str:
    """Exact per-class numbers as text: searchable, and readable where the plot is too dense."""
    splits = list(split_stats)
    counts = {s: split_stats[s].get("classes") or {} for s in splits}
    classes = sorted({c for per in counts.values() for c in per})
    if not classes:
        return ""
    head = "".join(f"<th>{esc(s)}</th>" for s in splits)
    rows = "".join(
        f"<tr><th>{esc(c)}</th>" + "".join(f"<td>{counts[s].get(c, 0)}</td>" for s in splits) + "</tr>" for c in classes
    )
    return (
        f"<details><summary>Counts per class ({len(classes)} classes)</summary>"
        f"<table><tr><th>class</th>{head}</tr>{rows}</table></details>"
    )


def _bucket_label(i: int) -> str:
    if i + 1 == len(SIZE_EDGES):
        return f"{SIZE_EDGES[i]}+"
    return f"{SIZE_EDGES[i]}-{SIZE_EDGES[i + 1] - 1}"


def _size_matrix(split_stats: dict[str, dict]) -> np.ndarray:
    matrix = np.zeros((len(SIZE_EDGES), len(SIZE_EDGES)), dtype=int)
    for stats in split_stats.values():
        for key, n in (stats.get("size_buckets") or {}).items():
            try:
                h, w = (int(v) for v in str(key).split("x"))
            except ValueError:
                continue  # a malformed key must not stop the report from being written
            # bisect tolerates values that are not exact edges.
            matrix[bisect.bisect_right(SIZE_EDGES, h) - 1, bisect.bisect_right(SIZE_EDGES, w) - 1] += n
    return matrix


def _size_plot(split_stats: dict[str, dict]) -> str:
    matrix = _size_matrix(split_stats)
    if not matrix.any():
        return _empty_plot("No images: no size buckets to plot.")
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    ax = fig.add_subplot()
    # Log colour scale: one dominant bucket would otherwise hide all the others.
    shown = np.ma.masked_equal(matrix, 0)
    image = ax.imshow(shown, cmap="Blues", origin="lower", norm=LogNorm(vmin=1, vmax=matrix.max()))
    threshold = np.sqrt(matrix.max())  # midpoint on the log scale: dark cells get white text
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="white" if n > threshold else "black")
    labels = [_bucket_label(i) for i in range(len(SIZE_EDGES))]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("Image sizes, all splits (height x width buckets)")
    fig.colorbar(image, ax=ax, label="images")
    # Alt text carries the cell counts too, so the numbers survive without the image.
    cells = [f"{_bucket_label(i)} x {_bucket_label(j)}: {n}" for (i, j), n in np.ndenumerate(matrix) if n]
    return _png(fig, "Image sizes (height x width px): " + "; ".join(cells))


def _anomaly(a: dict) -> str:
    severity = a.get("severity", "warn")
    items = list(a.get("items") or [])
    parts = [
        f'<h3 class="{esc(severity)}">[{esc(severity).upper()}] {esc(a.get("kind", ""))}</h3>',
        f"<p>{esc(a.get('message', ''))}</p>",
    ]
    if items:
        parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items[:MAX_ITEMS]) + "</ul>")
    if len(items) > MAX_ITEMS:  # thousands of files would make the page unusable
        parts.append(f"<p>... and {len(items) - MAX_ITEMS} more</p>")
    return "".join(parts)


def _anomalies(anomalies: list[dict]) -> str:
    if not anomalies:
        return "<p>No anomalies.</p>"
    # Blocking ones first: they are what the reader has to fix.
    ordered = sorted(anomalies, key=lambda a: a.get("severity") != "block")
    return "".join(_anomaly(a) for a in ordered)


def _pixel_stats(split_stats: dict[str, dict]) -> str:
    parts = []
    for split, stats in split_stats.items():
        mean, std = stats.get("pixel_mean"), stats.get("pixel_std")
        if not mean:
            continue
        std = list(std or [])
        head = "".join(f"<th>channel {i}</th>" for i in range(len(mean)))
        row_mean = "".join(f"<td>{v:.4f}</td>" for v in mean)
        row_std = "".join(f"<td>{v:.4f}</td>" for v in std)
        parts.append(
            f"<h3>{esc(split)}</h3><table><tr><th></th>{head}</tr>"
            f"<tr><th>mean</th>{row_mean}</tr><tr><th>std</th>{row_std}</tr></table>"
        )
    if not parts:
        return ""
    return "<h2>Pixel statistics</h2>" + "".join(parts)


def _label_sets(split_stats: dict[str, dict]) -> str:
    """Multi-label data: labels per image, images with no label, and the pairs of labels seen
    together most often, per split ("" for single-label data)."""
    if not any("label_sets" in stats for stats in split_stats.values()):
        return ""
    rows = []
    for split, stats in split_stats.items():
        pairs = list((stats.get("cooccurrence") or {}).items())[:MAX_PAIRS]
        together = ", ".join(f"{' + '.join(label_sets.decode(pair))} {n}" for pair, n in pairs) or "—"
        rows.append(
            f"<tr><th>{esc(split)}</th><td>{stats.get('labels_per_image', 0):.2f}</td>"
            f"<td>{stats.get('unlabelled', 0)}</td><td>{esc(together)}</td></tr>"
        )
    head = "<tr><th>split</th><th>labels per image</th><th>images with no label</th><th>labels seen together</th></tr>"
    return f"<h3>Label sets (multi-label)</h3><table>{head}{''.join(rows)}</table>"


def data_section(split_stats: dict[str, dict], anomalies: list[dict]) -> str:
    """The verdict, the per-split tables and the class plot: the data summary the run report shows."""
    tables = "".join(_split_table(s, st) for s, st in split_stats.items())
    return (
        f"{_verdict(anomalies)}<h3>Splits</h3>{tables}"
        f"<h3>Classes</h3>{_class_plot(split_stats)}{_class_table(split_stats)}{_label_sets(split_stats)}"
    )


def render_html(split_stats: dict[str, dict], anomalies: list[dict], title: str = "Data validation report") -> str:
    """The whole report as one HTML document (plots inlined as base64 PNG)."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{data_section(split_stats, anomalies)}"
        f"<h2>Image sizes</h2>{_size_plot(split_stats)}"
        f"<h2>Anomalies</h2>{_anomalies(anomalies)}"
        f"{_pixel_stats(split_stats)}</body></html>\n"
    )
