"""evaluate for multi-label data: mAP with its interval, per-label AP, thresholds fitted on val,
what they give, the gate, and the figures.

Writes into the Evaluation ``metrics.json`` (every figure below), ``probabilities.npy``,
``thresholds.json`` (each label's threshold and how val chose it: export ships them with the
model), the per-label figure and the gallery of the worst errors (missed and spurious labels),
and into the Blessing the gate's checks (``label_gate.py``). The single-label parts that do not
apply (the confusion matrix, top-k, temperature scaling, slices, robustness) are not run, and
the summary says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from visionpipe.components.common import label_metrics as lm
from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.evaluate import gradcam, label_gate, plots
from visionpipe.components.evaluate.baseline import score_served
from visionpipe.components.evaluate.data import EvalSplit, load_split
from visionpipe.components.evaluate.gate import blessing as make_blessing
from visionpipe.components.evaluate.gate import gate_note
from visionpipe.components.evaluate.spec import Inputs, Outputs, Params
from visionpipe.pipeline.artifacts import Blessing, Evaluation
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext

NOT_RUN = (
    "temperature scaling, prior correction, top-k, the confusion matrix, slices and robustness are single-label checks"
)


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext, split: str, no_test_split: str) -> dict:
    cfg = params.evaluate
    model, spec, labels_names = load_trained(inputs.model.path)
    out = outputs.evaluation.path
    with ctx.progress(f"reading the {split} split", None):
        data = load_split(inputs.examples.path, split, spec, multi_hot=len(labels_names))
    with ctx.progress(f"scoring the {split} split", len(data), "images") as progress:
        _, probabilities = predict_batches(data.batches(), model.predict_on_batch, False, progress)
    labels = data.labels.astype(np.int64)
    if not labels.any():
        raise UserError(
            f"no image of the {split} split carries a label, so no label's average precision can be measured; "
            "give the split images with labels (data.labels.allow_empty lets most, not all, be negatives)"
        )
    thresholds = _fit_thresholds(model, inputs, spec, labels_names, split, cfg, ctx)
    result = scores(labels, probabilities, thresholds, labels_names, cfg, params.seed)
    result.update(split=split, not_run=NOT_RUN)
    if cfg.gallery_images:
        result["gallery"] = _gallery(
            model, data, probabilities, result["thresholds"], labels_names, cfg.gallery_images, out
        )
    comparison = _against_served(ctx.external, data, result, probabilities, params, ctx)
    checks = label_gate.default_checks(result, cfg, no_test_split) + label_gate.absolute_checks(result, cfg)
    blessing = make_blessing(checks + [label_gate.baseline_check(comparison, cfg)], inputs.model.uri)
    if comparison is not None:
        result["baseline"] = comparison
    _write(result, probabilities, blessing, outputs, inputs.model.path)
    headline = {key: result[key] for key in ("map", "micro_map", "accuracy", "examples")}
    outputs.evaluation.properties.update(
        headline, split=split, multi_label=True, thresholds=[t["threshold"] for t in result["thresholds"]]
    )
    notes = _notes(result, blessing)
    for note in notes:
        ctx.log(note)
    return {**headline, "verdict": blessing["verdict"], "blessed": blessing["blessed"], "notes": notes}


def scores(
    labels: np.ndarray, probabilities: np.ndarray, thresholds: list[dict], names: list[str], cfg, seed: int
) -> dict:
    """Every figure of a multi-label evaluation, from the split's multi-hot labels and probabilities."""
    aps = lm.average_precisions(labels, probabilities)
    cut = np.array([t["threshold"] for t in thresholds])
    at_thresholds = lm.decisions_metrics(labels, (probabilities >= cut).astype(int), names)
    at_half = lm.decisions_metrics(labels, (probabilities >= lm.DEFAULT_THRESHOLD).astype(int), names)
    prevalence = labels.mean(axis=0)
    carried = labels.any(axis=0)
    return {
        "examples": int(len(labels)),
        "labels": names,
        "map": float(np.nanmean(aps)),
        "micro_map": lm.micro_map(labels, probabilities),
        "chance_map": float(prevalence[carried].mean()) if carried.any() else 0.0,
        "average_precision": {n: (None if np.isnan(ap) else float(ap)) for n, ap in zip(names, aps, strict=True)},
        "prevalence": dict(zip(names, map(float, prevalence), strict=True)),
        "intervals": {"map": lm.map_interval(labels, probabilities, cfg.bootstrap_resamples, seed)},
        "thresholds": [{"label": n, **t} for n, t in zip(names, thresholds, strict=True)],
        "at_thresholds": at_thresholds,
        "at_0.5": {k: at_half[k] for k in ("averages", "subset_accuracy", "hamming_loss")},
        "accuracy": at_thresholds["subset_accuracy"],
        "hamming_loss": at_thresholds["hamming_loss"],
        "calibration": {
            "ece_per_label": dict(
                zip(names, lm.label_calibration(labels, probabilities, cfg.calibration_bins), strict=True)
            ),
        },
    }


def _fit_thresholds(model, inputs: Inputs, spec, names: list[str], split: str, cfg, ctx) -> list[dict]:
    """Each label's threshold, fitted on val (also when val is the evaluated split, said so)."""
    if not inputs.examples.split_counts["val"]:
        return [{"threshold": lm.DEFAULT_THRESHOLD, "rule": "default: there is no val split"} for _ in names]
    val = image_dataset(inputs.examples.path, "val", spec, len(names), batch_size=256, multi_label=True)
    with ctx.progress("scoring the val split to fit thresholds", inputs.examples.split_counts["val"], "images") as p:
        labels, probabilities = predict_batches(val, model.predict_on_batch, False, p)
    fitted = lm.fit_thresholds(labels.astype(np.int64), probabilities, cfg.target_precision, cfg.min_threshold_images)
    if split == "val":  # no test split: the thresholds were chosen on the images they are scored on
        fitted = [{**t, "rule": t["rule"] + " (on the evaluated split: optimistic)"} for t in fitted]
    return fitted


def _gallery(model, data: EvalSplit, probabilities, thresholds, names, count: int, out: Path) -> dict:
    """The images with the worst-decided labels: a missed label with the lowest probability or a
    spurious one with the highest, with their heat maps (for the most probable label)."""
    cut = np.array([t["threshold"] for t in thresholds])
    decided = probabilities >= cut
    wrong = decided != data.labels.astype(bool)
    error = np.where(wrong, np.abs(data.labels - probabilities), 0.0).max(axis=1)
    chosen = np.flatnonzero(error > 0)
    chosen = chosen[np.argsort(-error[chosen])][:count]
    if not len(chosen):
        return {"images": [], "method": "none: no mistakes"}
    images, _ = next(data.batches(len(chosen), chosen))
    heat, methods = gradcam.heat_maps(model, images)
    entries = []
    for i, method in zip(chosen, methods, strict=True):
        missed = [names[j] for j in np.flatnonzero(wrong[i] & data.labels[i].astype(bool))]
        spurious = [names[j] for j in np.flatnonzero(wrong[i] & decided[i])]
        entries.append({"source": data.sources[i], "missed": missed, "spurious": spurious, "heat": method})
    captions = [
        "; ".join(
            part
            for part in (
                f"missed {', '.join(e['missed'])}" if e["missed"] else "",
                f"spurious {', '.join(e['spurious'])}" if e["spurious"] else "",
            )
            if part
        )
        for e in entries
    ]
    plots.gallery(images, heat, captions, methods, out / Evaluation.GALLERY)
    return {"images": entries, "method": gradcam.summary(methods)}


def _against_served(served, data: EvalSplit, result: dict, probabilities, params: Params, ctx) -> dict | None:
    """The served model's mAP on the same images (as a client sends them) and the paired
    bootstrap interval of the candidate's difference."""
    if served is None:
        return None
    with ctx.progress(f"scoring the served model (version {served.version})", len(data), "images") as progress:
        served_probabilities = score_served(served, data.encoded_batches(), progress)
    labels = data.labels.astype(np.int64)
    served_map = lm.mean_ap(labels, served_probabilities)
    cfg = params.evaluate
    return {
        "version": served.version,
        "path": str(served.path),
        "metric": "map",
        "candidate": result["map"],
        "baseline": served_map,
        "difference": result["map"] - served_map,
        "difference_interval": lm.map_difference_interval(
            labels, probabilities, served_probabilities, cfg.bootstrap_resamples, params.seed
        ),
    }


def _write(result: dict, probabilities, blessing: dict, outputs: Outputs, model_dir: Path) -> None:
    out = outputs.evaluation.path
    (out / Evaluation.METRICS).write_text(json.dumps(result, indent=2))
    (out / Evaluation.THRESHOLDS).write_text(json.dumps(result["thresholds"], indent=2))
    np.save(out / "probabilities.npy", probabilities)
    plots.per_class(result["at_thresholds"]["per_label"], out / Evaluation.PER_CLASS)
    history = model_dir / "history.json"
    if history.is_file():
        plots.training_curves(json.loads(history.read_text()), out / Evaluation.TRAINING_CURVES)
    (outputs.blessing.path / Blessing.FILE).write_text(json.dumps(blessing, indent=2))
    outputs.blessing.properties.update(
        verdict=blessing["verdict"],
        blessed=blessing["blessed"],
        reasons=[] if blessing["blessed"] else blessing["reasons"],
    )


def _notes(result: dict, blessing: dict) -> list[str]:
    low, high = result["intervals"]["map"]
    micro = result["at_thresholds"]["averages"]["micro"]
    half = result["at_0.5"]["averages"]["micro"]
    aps = sorted(((ap, n) for n, ap in result["average_precision"].items() if ap is not None))
    weakest = ", ".join(f"{n} {ap:.3f}" for ap, n in aps[:5])
    return [
        f"{result['split']} mAP {result['map']:.4f} (95% CI {low:.4f}-{high:.4f}; chance {result['chance_map']:.4f}), "
        f"micro mAP {result['micro_map']:.4f} on {result['examples']:,} images",
        f"at the thresholds fitted on val: micro F1 {micro['f1']:.4f} (at 0.5: {half['f1']:.4f}), subset accuracy "
        f"{result['accuracy']:.4f}, Hamming loss {result['hamming_loss']:.4f}",
        f"lowest AP: {weakest}",
        f"not run for multi-label data: {NOT_RUN}",
        gate_note(blessing),
    ]
