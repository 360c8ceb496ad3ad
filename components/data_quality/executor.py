"""data_quality executor: embeds every image of every split with the trained model (one
streamed pass, ``embed.py``), then finds likely label errors (``label_issues.py``),
near-duplicates, leakage across splits and outliers (``neighbours.py``), and writes them with
their file paths into the DataQuality artifact (``findings.py``).

Nothing in the user's data is changed: the findings are for a person to review.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.data_quality import findings as files
from visionpipe.components.data_quality.config import DataQualityConfig
from visionpipe.components.data_quality.cost import Budget, OverBudget
from visionpipe.components.data_quality.embed import Embedded, embed_splits
from visionpipe.components.data_quality.label_issues import (
    CROSS_VALIDATED,
    TRAINED_MODEL,
    label_issues,
    out_of_sample_probabilities,
)
from visionpipe.components.data_quality.neighbours import (
    hash_limit,
    near_duplicates,
    nearest,
    normalized,
    outlier_scores,
    outliers,
)
from visionpipe.components.data_quality.report import comparison_cut, cost, label_checks_text
from visionpipe.components.data_quality.spec import Inputs, Outputs, Params
from visionpipe.data import label_sets
from visionpipe.pipeline.artifacts import DataQuality, Examples
from visionpipe.pipeline.stage import StageContext

Finding = dict[str, Any]
# Confident learning as wired here ranks one label per image; cleanlab's multi-label variant is not.
MULTI_LABEL_NOT_CHECKED = (
    "not checked: label issues are found for single-label data only (near-duplicates and outliers are)"
)


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg, started = params.data_quality, time.time()
    split_counts = inputs.examples.split_counts
    total = sum(split_counts.values())
    summary: dict[str, Any] = {"images": total, "split_images": split_counts, "report_images": cfg.report_images}
    found: list[Finding] = []
    if total > cfg.max_images:
        summary["skipped"] = (
            f"{total:,} images is more than data_quality.max_images ({cfg.max_images:,}); raise it to check this data"
        )
    else:
        try:
            found = _check(inputs, outputs, params, ctx, summary)
        except OverBudget as err:
            summary["skipped"] = str(err)
    summary["counts"] = files.counts(found)
    summary["seconds"] = round(time.time() - started, 2)
    if summary.get("training_seconds"):
        summary["share_of_training"] = round(summary["seconds"] / summary["training_seconds"], 3)
    files.write(outputs.data_quality.path, found, summary)
    outputs.data_quality.properties.update(
        counts=summary["counts"],
        seconds=summary["seconds"],
        skipped=summary.get("skipped", ""),
        anomalies=summary.get("anomalies", []),
    )
    notes = _notes(summary)
    for note in notes:
        ctx.log(note)
    return {**summary["counts"], "images": total, "seconds_checking": summary["seconds"], "notes": notes}


def _check(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext, summary: dict) -> list[Finding]:
    """Embeds every split, finds everything, writes the thumbnails; fills ``summary`` in."""
    cfg, split_counts = params.data_quality, inputs.examples.split_counts
    total, started = sum(split_counts.values()), time.monotonic()
    model, spec, classes = load_trained(inputs.model.path)
    multi_label = inputs.examples.multi_label
    fit_seconds = inputs.model.properties.get("fit_seconds")
    with ctx.progress("embedding every split with the trained model", total, "images") as progress:
        budget = Budget(progress, total, fit_seconds, cfg.max_training_share)
        data = embed_splits(
            model, inputs.examples.path, split_counts, spec, len(classes), cfg.batch_size, budget, multi_label
        )
    summary["seconds_embedding"] = round(time.monotonic() - started, 2)
    summary["embedding_dimensions"] = int(data.embeddings.shape[1])
    held_out = data.splits != "train"
    if (
        held_out.any() and not multi_label
    ):  # a weak model's mistakes on val/test read as label errors: say how good it is
        predicted = data.probabilities[held_out].argmax(axis=1)
        summary["model_accuracy_val_test"] = round(float(np.mean(predicted == data.labels[held_out])), 4)
    with ctx.progress("label issues, near-duplicates and outliers", None):
        # Centred and L2-normalised: cosine geometry for the neighbours, and on the MNIST sample
        # the held-out classifier fits it better than the raw features (68 suspects, not 312).
        data.embeddings = normalized(data.embeddings)
        labelled: list[Finding] = []
        if multi_label:
            summary["label_checks"] = {"every split": MULTI_LABEL_NOT_CHECKED}
        else:
            labelled, summary["label_checks"] = _label_findings(data, classes, cfg, params.seed)
        # The pixel comparison is the part whose cost the embedding pass cannot foretell (it grows
        # with how alike the model draws the images): it stops where the stage's budget ends.
        deadline = started + budget.seconds if budget.seconds else None
        paired, summary["near_duplicate_rule"] = _neighbour_findings(data, classes, cfg, deadline)
    found = labelled + paired
    summary["leaked_share"], summary["anomalies"] = _leakage_anomaly(found, split_counts, params)
    files.write_thumbnails(inputs.examples.path, outputs.data_quality.path, _shown(found, cfg.report_images))
    if fit_seconds:
        summary["training_seconds"] = fit_seconds
    return found


def _image(data: Embedded, classes: list[str], i: int, prefix: str = "") -> Finding:
    """The columns that name image ``i``: split, path, position in its split, given label (a
    multi-label image's labels as a manifest spells them: "cat|dog")."""
    label = data.labels[i]
    given = label_sets.encode(classes[j] for j in np.flatnonzero(label)) if label.ndim else classes[int(label)]
    return {
        f"{prefix}split": str(data.splits[i]),
        f"{prefix}path": data.sources[i],
        f"{prefix}index": int(data.index_in_split[i]),
        f"{prefix}label": given,
    }


def _label_findings(
    data: Embedded, classes: list[str], cfg: DataQualityConfig, seed: int
) -> tuple[list[Finding], dict[str, str]]:
    """Label issues of each split, and how each split was checked (or why it was not)."""
    found: list[Finding] = []
    checks: dict[str, str] = {}
    for split in Examples.SPLITS:
        rows = np.flatnonzero(data.splits == split)
        if not len(rows):
            continue
        labels = data.labels[rows]
        if split == "train":
            try:
                probabilities, folds = out_of_sample_probabilities(
                    data.embeddings[rows], labels, len(classes), cfg.folds, seed
                )
            except ValueError as err:
                checks[split] = f"not checked: {err}"
                continue
            checked_by = f"{CROSS_VALIDATED} ({folds} folds)"
        else:  # never trained on: the model's own predictions are out of sample
            probabilities, checked_by = data.probabilities[rows], TRAINED_MODEL
        checks[split] = checked_by
        for issue in label_issues(labels, probabilities):
            found.append({
                "kind": DataQuality.LABEL_ISSUE, **_image(data, classes, int(rows[issue.index])),
                "suggested_label": classes[issue.suggested], "score": round(issue.score, 4), "checked_by": checked_by,
            })  # fmt: skip
    found.sort(key=lambda f: f["score"])  # the least likely labels first, across splits
    return _ranked(found), checks


def _neighbour_findings(
    data: Embedded, classes: list[str], cfg: DataQualityConfig, deadline: float | None = None
) -> tuple[list[Finding], dict]:
    """Near-duplicate pairs (leakage when they cross splits) and outliers, and the rule that
    found the pairs (the pixel comparison stops at ``deadline``, ``near_duplicates``).
    ``data.embeddings`` are centred and unit-length (``normalized``)."""
    neighbours = nearest(data.embeddings, cfg.neighbours)
    order = {split: n for n, split in enumerate(Examples.SPLITS)}
    leaked: list[Finding] = []
    within: list[Finding] = []
    hash_distance = hash_limit(data.hashes, cfg.max_hash_distance)
    pairs, compared, proposed = near_duplicates(
        data.embeddings, data.hashes, data.thumbnails, neighbours, cfg.min_cosine, hash_distance,
        cfg.min_pixel_correlation, deadline,
    )  # fmt: skip
    for pair in pairs:
        first, second = sorted((pair.first, pair.second), key=lambda i: order[str(data.splits[i])])
        crosses = data.splits[first] != data.splits[second]
        (leaked if crosses else within).append({
            "kind": DataQuality.LEAKAGE if crosses else DataQuality.DUPLICATE,
            **_image(data, classes, first), **_image(data, classes, second, "other_"),
            "score": round(pair.correlation, 4), "pixel_correlation": round(pair.correlation, 4),
            "cosine": round(pair.cosine, 4), "hash_distance": pair.hash_distance,
        })  # fmt: skip
    scores = outlier_scores(neighbours)
    far = [
        {"kind": DataQuality.OUTLIER, **_image(data, classes, i), "score": round(z, 2),
         "knn_distance": round(float(scores[i]), 4)}
        for i, z in outliers(scores, cfg.outlier_min_zscore, cfg.max_outliers)
    ]  # fmt: skip
    rule = {"min_cosine": cfg.min_cosine, "max_hash_distance": hash_distance,
            "min_pixel_correlation": cfg.min_pixel_correlation, "pairs_compared": compared,
            "pairs_proposed": proposed}  # fmt: skip
    return _ranked(leaked) + _ranked(within) + _ranked(far), rule


def _leakage_anomaly(
    found: list[Finding], split_counts: dict[str, int], params: Params
) -> tuple[float, list[dict[str, Any]]]:
    """The share of val and test images with a near-copy in an earlier split, and the
    near_duplicate_leakage anomaly when it is above ``data_quality.max_leaked_share``."""
    cfg = params.data_quality
    evaluated = sum(n for split, n in split_counts.items() if split != "train")
    leaked = {(f["other_split"], f["other_index"]) for f in found if f["kind"] == DataQuality.LEAKAGE}
    share = len(leaked) / evaluated if evaluated else 0.0
    if share <= cfg.max_leaked_share:
        return round(share, 4), []
    anomaly = {
        "kind": DataQuality.LEAKAGE,
        "severity": params.leakage_severity,
        "description": (
            f"{len(leaked)} of the {evaluated} val/test images ({share:.1%}, above data_quality.max_leaked_share "
            f"{cfg.max_leaked_share:.0%}) have a copy (resized, recompressed, cropped or mirrored) in an earlier "
            "split, so the evaluation flatters the "
            f"model; leave the copies out with data.exclude=<this stage's {DataQuality.FINDINGS_CSV}> (rows "
            "marked drop) or set validate.severity.near_duplicate_leakage: warn"
        ),
    }
    return round(share, 4), [anomaly]


def _ranked(found: list[Finding]) -> list[Finding]:
    for rank, finding in enumerate(found, 1):
        finding["rank"] = rank
    return found


def _shown(found: list[Finding], per_kind: int) -> dict[str, set[int]]:
    """Split -> positions of the images the report shows (the first ``per_kind`` of each kind)."""
    wanted: dict[str, set[int]] = {}
    for finding in found:
        if finding["rank"] <= per_kind:
            for prefix in ("", "other_"):
                if f"{prefix}split" in finding:
                    wanted.setdefault(finding[f"{prefix}split"], set()).add(finding[f"{prefix}index"])
    return wanted


def _notes(summary: dict[str, Any]) -> list[str]:
    if "skipped" in summary:
        return [f"data quality not checked: {summary['skipped']}"]
    c = summary["counts"]
    checks = label_checks_text(summary)
    if "model_accuracy_val_test" in summary:
        checks += f"; the model's accuracy on val and test: {summary['model_accuracy_val_test']:.4f}"
    anomalies = [f"{a['kind']} anomaly ({a['severity']}): {a['description']}" for a in summary["anomalies"]]
    cut = [said] if (said := comparison_cut(summary)) else []
    return [
        f"data quality: {c[DataQuality.LABEL_ISSUE]} likely label errors ({checks}), "
        f"{c[DataQuality.LEAKAGE]} near-duplicate pairs across splits (leakage: copies of "
        f"{summary['leaked_share']:.1%} of the val/test images), {c[DataQuality.DUPLICATE]} "
        f"within a split, {c[DataQuality.OUTLIER]} outliers; {cost(summary)}",
        f"every finding with its file paths: {DataQuality.FINDINGS_CSV} and {DataQuality.FINDINGS_JSON} in the "
        "stage's outputs",
        *cut,
        *anomalies,
    ]
