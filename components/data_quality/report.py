"""The data-quality section of the run report: counts and cost, then a gallery per kind of
finding (thumbnail, path, given and suggested label, score; near-duplicate pairs side by side).

The thumbnails are the artifact's PNG files inlined as data URIs, so the page stays
self-contained. The findings files list every finding; the report shows the first
``data_quality.report_images`` of each kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionpipe.components.common.html import esc, png_tag
from visionpipe.components.data_quality.findings import thumbnail_name
from visionpipe.pipeline.artifacts import DataQuality

TITLES = {
    DataQuality.LABEL_ISSUE: "Likely label errors",
    DataQuality.LEAKAGE: "Near-duplicates across splits (leakage)",
    DataQuality.DUPLICATE: "Near-duplicates within a split",
    DataQuality.OUTLIER: "Outliers (far from every other image)",
}
# A fixed size (the page's img max-width would squeeze it in a narrow cell), pixels kept sharp.
_THUMB = " style='width:64px;max-width:none;height:auto;image-rendering:pixelated'"


def _thumb(folder: Path, finding: dict[str, Any], prefix: str = "") -> str:
    path = folder / thumbnail_name(finding[f"{prefix}split"], finding[f"{prefix}index"])
    return png_tag(path, finding[f"{prefix}path"], _THUMB) if path.is_file() else ""


def _image_cells(folder: Path, finding: dict[str, Any], prefix: str = "") -> str:
    path = f"<code style='word-break:break-all'>{esc(finding[f'{prefix}path'])}</code>"
    where = f"{esc(finding[f'{prefix}split'])}: {path}"
    return f"<td>{_thumb(folder, finding, prefix)}</td><td>{where}<br>label {esc(finding[f'{prefix}label'])}</td>"


def _row(folder: Path, finding: dict[str, Any]) -> str:
    kind = finding["kind"]
    cells = _image_cells(folder, finding)
    if kind == DataQuality.LABEL_ISSUE:
        detail = f"suggested <b>{esc(finding['suggested_label'])}</b>; by {esc(finding['checked_by'])}"
    elif kind == DataQuality.OUTLIER:
        detail = f"{finding['knn_distance']:.3f} from its nearest neighbours"
    else:
        cells += _image_cells(folder, finding, "other_")
        detail = f"embedding cosine {finding['cosine']:.4f}, hash {finding['hash_distance']} bits apart"
    rank, score = finding["rank"], finding["score"]
    return f"<tr><td class='num'>{rank}</td>{cells}<td class='num'>{score}</td><td>{detail}</td></tr>"


def _gallery(folder: Path, found: list[dict[str, Any]], kind: str, shown: int) -> str:
    of_kind = [f for f in found if f["kind"] == kind]
    if not of_kind:
        return ""
    pair = kind in (DataQuality.LEAKAGE, DataQuality.DUPLICATE)
    images = "<th></th><th>image</th><th></th><th>copy</th>" if pair else "<th></th><th>image</th>"
    score = {DataQuality.LABEL_ISSUE: "label quality", DataQuality.OUTLIER: "robust z"}.get(kind, "pixels alike")
    rows = "".join(_row(folder, f) for f in of_kind[:shown])
    more = f"<p>{len(of_kind) - shown} more in the findings files.</p>" if len(of_kind) > shown else ""
    head = f"<tr><th>#</th>{images}<th>{score}</th><th></th></tr>"
    return f"<h3>{esc(TITLES[kind])} ({len(of_kind)})</h3><table>{head}{rows}</table>{more}"


def label_checks_text(summary: dict[str, Any]) -> str:
    """How each split's labels were checked ("train by cross-validated ...; val by ..."), or why not."""
    return "; ".join(
        f"{split} {how}" if how.startswith("not checked") else f"{split} by {how}"
        for split, how in summary.get("label_checks", {}).items()
    )


def summary_line(summary: dict[str, Any]) -> str:
    """The counts and the cost in one sentence (the report's and the Markdown's)."""
    if summary.get("skipped"):
        return f"Not checked: {summary['skipped']}."
    counts = summary["counts"]
    parts = ", ".join(f"{counts[kind]} {TITLES[kind][0].lower()}{TITLES[kind][1:]}" for kind in DataQuality.KINDS)
    checks = label_checks_text(summary)
    accuracy = summary.get("model_accuracy_val_test")
    model = (
        f" The trained model's accuracy on val and test: {accuracy:.4f} (a weak model's mistakes there read as "
        "label errors)."
        if accuracy is not None
        else ""
    )
    leaked = summary.get("leaked_share")
    leaked_said = f" {leaked:.1%} of the val/test images have a copy in an earlier split." if leaked else ""
    anomalies = "".join(
        f" Anomaly {a['kind']} ({'blocking' if a['severity'] == 'block' else 'warning'}): {a['description']}."
        for a in summary.get("anomalies", [])
    )
    stopped = comparison_cut(summary)
    cut = f" {stopped[:1].upper()}{stopped[1:]}." if stopped else ""
    return f"{parts}. Labels checked: {checks}.{model}{leaked_said}{cut}{anomalies} {cost(summary)}."


def comparison_cut(summary: dict[str, Any]) -> str:
    """Where the near-duplicates' pixel comparison stopped at the stage's budget ("" when it
    compared every proposed pair, or in a record written before it could stop)."""
    rule = summary.get("near_duplicate_rule", {})
    compared, proposed = rule.get("pairs_compared", 0), rule.get("pairs_proposed", 0)
    if compared >= proposed:
        return ""
    return (
        f"near-duplicates: {compared:,} of the {proposed:,} proposed pairs compared by their pixels, the most "
        "alike embeddings first, before the stage reached data_quality.max_training_share of the "
        f"{summary['training_seconds']:.0f} s the model trained; raise it to compare them all"
    )


def cost(summary: dict[str, Any]) -> str:
    """'S s on N images', and the share of the training time when the train stage's is known."""
    said = f"{summary['seconds']:.1f} s on {summary['images']:,} images"
    if "share_of_training" in summary:
        said += f" ({summary['share_of_training']:.0%} of the {summary['training_seconds']:.0f} s of training)"
    return said


def quality_section(artifact_dir: Path, record: dict[str, Any], shown: int = 24) -> str:
    """The HTML of the section from ``findings.json`` (``record``) and the artifact's thumbnails."""
    summary, found = record["summary"], record["findings"]
    folder = artifact_dir / DataQuality.THUMBNAILS
    csv_path = esc(str(artifact_dir / DataQuality.FINDINGS_CSV))
    files = f"<p>Every finding with its file paths: <code>{csv_path}</code></p>"
    galleries = "".join(_gallery(folder, found, kind, shown) for kind in DataQuality.KINDS)
    return f"<p>{esc(summary_line(summary))}</p>{files}{galleries}"
