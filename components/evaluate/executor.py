"""evaluate executor: scores the trained model on the test split (val when there is no test
split), measures how far to trust it, and decides the Blessing.

Writes into the Evaluation artifact ``metrics.json`` (every figure below), the predicted
``probabilities.npy``, ``confusion_matrix.csv`` and the figures (``plots.py``); into the
Blessing ``blessing.json`` (every check with its value, threshold and verdict). In order:
metrics with bootstrap intervals; temperature scaling fitted on val with ECE before and
after; test-time augmentation if asked; slices; robustness under corruptions and FGSM; the
most-confused pairs and a gallery of the most confident mistakes with Grad-CAM; the served
model re-scored on the same images; the trivial baselines (``trivial.py``); the gate.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from visionpipe.components.common import calibration, prior_correction
from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.evaluate import bootstrap, gate, gradcam, multi_label, plots
from visionpipe.components.evaluate.baseline import score_served
from visionpipe.components.evaluate.data import EvalSplit, load_split
from visionpipe.components.evaluate.metrics import classification_metrics, most_confused_pairs
from visionpipe.components.evaluate.robustness import robustness
from visionpipe.components.evaluate.slices import slice_table
from visionpipe.components.evaluate.spec import Inputs, Outputs, Params
from visionpipe.components.evaluate.trivial import trivial_baselines
from visionpipe.models.temperature import with_temperature
from visionpipe.models.tta import tta_predict
from visionpipe.pipeline.artifacts import ABSENT, TOO_SMALL, Blessing, Evaluation
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.evaluate
    split = inputs.examples.evaluation_split
    if split is None:
        raise UserError("there is no test or val split to evaluate on; rerun ingest with data.split.test above 0")
    if inputs.examples.multi_label:
        no_test = _no_test_split(inputs.examples.split_origins.get("test", ""))
        return multi_label.run(inputs, outputs, params, ctx, split, no_test)
    model, spec, classes = load_trained(inputs.model.path)
    out = outputs.evaluation.path
    with ctx.progress(f"reading the {split} split", None):
        data = load_split(inputs.examples.path, split, spec)
    with ctx.progress(f"scoring the {split} split", len(data), "images") as progress:
        labels, as_trained = predict_batches(data.batches(), model.predict_on_batch, False, progress)
    val = _val_scores(model, inputs, spec, classes, cfg, ctx)
    calibrated = _calibration(as_trained, labels, val, split, cfg)
    correction = _prior_correction(as_trained, labels, val, calibrated["temperature"], inputs, classes, cfg, split)
    # What every figure below judges: the decisions export will serve. Temperature scaling alone
    # changes no decision; a prior correction does, so its corrected probabilities are scored.
    probabilities, served = _as_served(model, as_trained, labels, calibrated, correction, cfg)
    result = classification_metrics(labels, probabilities, classes, cfg.top_k)
    result.update(split=split, calibration=calibrated, **({"prior_correction": correction} if correction else {}))
    predicted = probabilities.argmax(axis=1)
    result["intervals"] = bootstrap.confidence_intervals(
        labels, predicted, len(classes), cfg.bootstrap_resamples, params.seed
    )
    result["intervals"]["resamples"] = cfg.bootstrap_resamples
    result["trivial"] = trivial_baselines(inputs.examples.class_counts("train"), classes, labels)
    if cfg.tta != "none":  # reported next to the plain figures, which the gate judges (what is served)
        with ctx.progress(f"scoring with {cfg.tta} test-time augmentation", len(data), "images") as progress:
            _, augmented = predict_batches(
                data.batches(), lambda x: tta_predict(lambda v: served(v, training=False), x, cfg.tta), False, progress
            )
        tta_result = classification_metrics(labels, augmented, classes, cfg.top_k)
        result["tta"] = {"mode": cfg.tta, **{k: tta_result[k] for k in ("accuracy", "macro_f1")}}
    result["slices"] = slice_table(predicted == labels, data, classes, cfg.slices)
    if cfg.robustness.enabled:
        chosen = _robustness_sample(len(data), cfg.robustness.samples, params.seed)
        with ctx.progress("robustness: corruptions and FGSM", len(chosen), "images") as progress:
            result["robustness"] = robustness(
                served, data, chosen, cfg.robustness.corruptions, cfg.robustness.fgsm_epsilons, params.seed, progress
            )
    result["most_confused"] = most_confused_pairs(result["confusion_matrix"], classes)
    if cfg.gallery_images:
        result["gallery"] = _gallery(model, data, probabilities, classes, cfg.gallery_images, out)
    comparison = _against_served(ctx.external, data, result, predicted, len(classes), params, ctx)
    if comparison is not None:
        result["baseline"] = comparison
    blessing = _judge(result, comparison, inputs, outputs, cfg)
    _write(result, probabilities, classes, inputs.model.path, out)
    headline = _record(result, outputs.evaluation)
    notes = _notes(result, blessing)
    for note in notes:
        ctx.log(note)
    return {**headline, "verdict": blessing["verdict"], "blessed": blessing["blessed"], "notes": notes}


def _record(result: dict, evaluation: Evaluation) -> dict:
    """The headline figures, and what export reads, into the Evaluation's properties."""
    headline = {k: result[k] for k in ("accuracy", "top_k_accuracy", "macro_f1", "examples") if k in result}
    if "tta" in result:
        headline["tta_accuracy"] = result["tta"]["accuracy"]
    c = result["calibration"]
    evaluation.properties.update(headline, split=result["split"], temperature=c["temperature"], ece=c["ece_served"])
    if result.get("prior_correction", {}).get("offsets") is not None:
        evaluation.properties["logit_offsets"] = result["prior_correction"]["offsets"]
    return headline


def _judge(result: dict, comparison: dict | None, inputs: Inputs, outputs: Outputs, cfg) -> dict:
    """The gate's checks and verdict, written into the Blessing."""
    checks = (
        gate.default_checks(result, cfg, _no_test_split(inputs.examples.split_origins.get("test", "")))
        + gate.absolute_checks(result, cfg)
        + [gate.baseline_check(comparison, cfg)]
    )
    blessing = gate.blessing(checks, inputs.model.uri)
    (outputs.blessing.path / Blessing.FILE).write_text(json.dumps(blessing, indent=2))
    outputs.blessing.properties.update(
        verdict=blessing["verdict"],
        blessed=blessing["blessed"],
        reasons=[] if blessing["blessed"] else blessing["reasons"],
    )
    return blessing


def _no_test_split(origin: str) -> str:
    """Why there is no test split to score, from how ingest made (or did not make) it."""
    if origin == TOO_SMALL:
        return "the data is too small for a separate test split; see the ingest summary"
    if origin == ABSENT:
        return "data.split.test is 0"
    return "there is no test split"


def _val_scores(model, inputs, spec, classes, cfg, ctx) -> tuple[np.ndarray, np.ndarray] | None:
    """The val split's labels and probabilities, which the temperature and the prior correction
    are fitted on (the split training stopped on, never the test split); None without a val
    split or when neither is asked for."""
    val_images = inputs.examples.split_counts["val"]
    if not val_images or not (cfg.temperature_scaling or cfg.prior_correction):
        return None
    val = image_dataset(inputs.examples.path, "val", spec, len(classes), batch_size=256)
    with ctx.progress("scoring the val split to fit the served probabilities", val_images, "images") as progress:
        return predict_batches(val, model.predict_on_batch, one_hot=True, progress=progress)


GIVEN_STRENGTH = "set by evaluate.prior_strength"


def _fitted_on(split: str) -> str:
    return "val" if split != "val" else "val, which is also the evaluated split (no test split): optimistic"


def _calibration(probabilities, labels, val, split, cfg) -> dict:
    """Temperature fitted on val, then ECE on the evaluated split before and after. Without a
    val split, or when switched off, the temperature is 1 and the served ECE is the raw one."""
    before = calibration.reliability(probabilities, labels, cfg.calibration_bins)
    found = {"temperature": 1.0, "ece_before": before["ece"], "bins_before": before["bins"]}
    if not cfg.temperature_scaling:
        return {**found, "ece_served": before["ece"], "fitted_on": "off (evaluate.temperature_scaling: false)"}
    if val is None:
        return {**found, "ece_served": before["ece"], "fitted_on": "not fitted: there is no val split"}
    temperature = calibration.fit_temperature(val[1], val[0])
    calibrated = calibration.with_temperature(probabilities, temperature)
    after = calibration.reliability(calibrated, labels, cfg.calibration_bins)
    return {
        **found,
        "temperature": temperature,
        "fitted_on": _fitted_on(split),
        "ece_after": after["ece"],
        "ece_served": after["ece"],
        "bins_after": after["bins"],
        "nll_before": calibration.negative_log_likelihood(probabilities, labels),
        "nll_after": calibration.negative_log_likelihood(calibrated, labels),
    }


def _prior_correction(probabilities, labels, val, temperature, inputs, classes, cfg, split) -> dict | None:
    """With ``evaluate.prior_correction``: the strength fitted on val, the logit offsets export
    serves (None when the fit keeps the model as trained), and the evaluated split's figures
    without the correction, for comparison."""
    if not cfg.prior_correction:
        return None
    without = classification_metrics(labels, probabilities, classes, cfg.top_k)
    found: dict = {
        "without": {
            **{k: without[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
            "recall": {name: c["recall"] for name, c in without["per_class"].items()},
            "predicted": dict(
                zip(classes, np.bincount(probabilities.argmax(1), minlength=len(classes)).tolist(), strict=True)
            ),
        },
        "worst_recall_without": _worst_recall(without),
    }
    given = cfg.prior_strength
    if val is None and given is None:
        return {**found, "strength": 0.0, "offsets": None, "fitted_on": "not fitted: there is no val split"}
    prior = prior_correction.log_prior(inputs.examples.class_counts("train"), classes)
    strength = given
    if val is not None:  # fitted there, or (given) scored there beside the uncorrected model
        val_log = calibration.log_probabilities(calibration.with_temperature(val[1], temperature))
        strength, tried = prior_correction.fit_strength(val_log, val[0], prior, given)
        found["val_balanced_accuracy"] = {"uncorrected": tried[0.0], "corrected": tried[strength]}
    fitted_on = GIVEN_STRENGTH if given is not None else _fitted_on(split)
    return {**found, "strength": strength, "fitted_on": fitted_on, "offsets": prior_correction.offsets(strength, prior)}


def _as_served(model, probabilities, labels, calibrated: dict, correction: dict | None, cfg):
    """The evaluated split's probabilities and the Keras model as export will serve them, when a
    prior correction changes decisions (with its ECE); else both as trained."""
    if not correction or correction["offsets"] is None:
        return probabilities, model
    temperature, offsets = calibrated["temperature"], correction["offsets"]
    served = calibration.with_temperature(probabilities, temperature, offsets)
    calibrated["ece_served"] = calibration.reliability(served, labels, cfg.calibration_bins)["ece"]
    return served, with_temperature(model, temperature, logit_offsets=offsets)


def _robustness_sample(images: int, samples: int, seed: int) -> np.ndarray:
    if not samples or samples >= images:
        return np.arange(images)
    return np.sort(np.random.default_rng(seed).choice(images, samples, replace=False))


def _gallery(model, data: EvalSplit, probabilities: np.ndarray, classes: list[str], count: int, out: Path) -> dict:
    """The ``count`` mistakes made with the highest confidence, with their heat maps."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != data.labels)
    chosen = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    if not len(chosen):
        return {"images": [], "method": "none: no mistakes"}
    images, _ = next(data.batches(len(chosen), chosen))
    heat, methods = gradcam.heat_maps(model, images)
    entries = [
        {
            "source": data.sources[i],
            "true": classes[data.labels[i]],
            "predicted": classes[predicted[i]],
            "confidence": float(probabilities[i, predicted[i]]),
            "heat": method,
        }
        for i, method in zip(chosen, methods, strict=True)
    ]
    captions = [f"{e['true']} -> {e['predicted']} ({e['confidence']:.0%})" for e in entries]
    method = gradcam.summary(methods)
    plots.gallery(images, heat, captions, methods, out / Evaluation.GALLERY)
    return {"images": entries, "method": method}


def _against_served(served, data: EvalSplit, result: dict, predicted, num_classes, params, ctx) -> dict | None:
    """The served model's score on the same images (their encoded bytes, as a client sends
    them), and the paired-bootstrap interval of the candidate's difference from it."""
    if served is None:
        return None
    cfg = params.evaluate
    labels = data.labels
    with ctx.progress(f"scoring the served model (version {served.version})", len(labels), "images") as progress:
        served_probabilities = score_served(served, data.encoded_batches(), progress)
    if len(served_probabilities) != len(labels):
        raise UserError(
            f"the served model at {served.path} returned {len(served_probabilities)} predictions for "
            f"{len(labels)} images"
        )
    metric = cfg.baseline.metric
    served_predicted = served_probabilities.argmax(axis=1)
    whole_split = np.arange(len(labels))[None]  # one "resample": the split itself
    candidate_score = result[metric]
    served_score = float(bootstrap.SCORES[metric](labels, served_predicted, whole_split, num_classes)[0])
    return {
        "version": served.version,
        "path": str(served.path),
        "metric": metric,
        "candidate": candidate_score,
        "baseline": served_score,
        "difference": candidate_score - served_score,
        "difference_interval": bootstrap.difference_interval(
            metric, labels, predicted, served_predicted, num_classes, cfg.bootstrap_resamples, params.seed
        ),
    }


def _write(result: dict, probabilities: np.ndarray, classes: list[str], model_dir: Path, out: Path) -> None:
    (out / Evaluation.METRICS).write_text(json.dumps(result, indent=2))
    np.save(out / "probabilities.npy", probabilities)
    with open(out / Evaluation.CONFUSION_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        writer.writerows([name, *row] for name, row in zip(classes, result["confusion_matrix"], strict=True))
    plots.confusion_matrix(result["confusion_matrix"], classes, out / Evaluation.CONFUSION_PNG)
    c = result["calibration"]
    after = {"ece": c["ece_after"], "bins": c["bins_after"]} if "ece_after" in c else None
    plots.reliability({"ece": c["ece_before"], "bins": c["bins_before"]}, after, out / Evaluation.RELIABILITY)
    plots.per_class(result["per_class"], out / Evaluation.PER_CLASS)
    if "robustness" in result:
        plots.robustness(result["robustness"], out / Evaluation.ROBUSTNESS)
    history = model_dir / "history.json"
    if history.is_file():
        plots.training_curves(json.loads(history.read_text()), out / Evaluation.TRAINING_CURVES)


def per_class_note(result: dict, most: int = 10) -> str:
    """Per-class precision/recall/F1 (support), all classes up to ``most``, else the weakest."""
    per_class = result["per_class"]
    shown = sorted(per_class, key=lambda c: per_class[c]["recall"])[:5] if len(per_class) > most else list(per_class)
    cells = [
        f"{c} {per_class[c]['precision']:.2f}/{per_class[c]['recall']:.2f}/{per_class[c]['f1']:.2f} "
        f"({per_class[c]['support']})"
        for c in shown
    ]
    which = "per class" if len(shown) == len(per_class) else f"the {len(shown)} classes with the lowest recall"
    return f"{which}, precision/recall/F1 (images): " + "; ".join(cells)


def _notes(result: dict, blessing: dict) -> list[str]:
    split = result["split"]
    low, high = result["intervals"]["accuracy"]
    top_k = f", top-{result['top_k']} {result['top_k_accuracy']:.4f}" if "top_k" in result else ""
    with_tta = f" ({result['tta']['mode']} TTA {result['tta']['accuracy']:.4f})" if "tta" in result else ""
    c = result["calibration"]
    calibrated = (
        f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} with temperature {c['temperature']:.3f} "
        f"(fitted on {c['fitted_on']})"
        if "ece_after" in c
        else f"ECE {c['ece_before']:.4f}, temperature {c['fitted_on']}"
    )
    notes = [
        f"{split} accuracy {result['accuracy']:.4f} (95% CI {low:.4f}-{high:.4f}, width {high - low:.4f}){with_tta}"
        f"{top_k}, macro F1 {result['macro_f1']:.4f} on {result['examples']:,} images"
        + (" (there is no test split)" if split != "test" else ""),
        baselines_note(result),
        per_class_note(result),
        f"calibration: {calibrated}",
        *([prior_correction_note(result)] if "prior_correction" in result else []),
    ]
    flagged = [s for s in result["slices"]["slices"] if s["flagged"]]
    if flagged:
        notes.append(
            "slices far below overall: "
            + "; ".join(f"{s['feature']} {s['slice']} {s['accuracy']:.4f} ({s['images']} images)" for s in flagged[:5])
        )
    if "robustness" in result:
        worst = max(
            result["robustness"]["corruptions"].items(), key=lambda kv: kv[1]["drop_at_strongest"], default=None
        )
        fgsm = result["robustness"]["fgsm"]
        notes.append(
            f"robustness on {result['robustness']['images']:,} images: "
            + (f"worst corruption {worst[0]} -{worst[1]['drop_at_strongest']:.4f}" if worst else "no corruptions")
            + (f"; FGSM eps {fgsm[-1]['epsilon']:.3f} accuracy {fgsm[-1]['accuracy']:.4f}" if fgsm else "")
        )
    notes.append(gate.gate_note(blessing))
    return notes


def prior_correction_note(result: dict) -> str:
    """What the prior correction (evaluate.prior_correction) chose and what it changed."""
    c = result["prior_correction"]
    if c["offsets"] is None:
        why = c["fitted_on"] if "val_balanced_accuracy" not in c else f"strength 0 was best on {c['fitted_on']}"
        return f"prior correction: none served ({why}); the model decides as trained"
    was, source = c["without"], c["fitted_on"] if c["fitted_on"] == GIVEN_STRENGTH else f"fitted on {c['fitted_on']}"
    if "val_balanced_accuracy" in c:
        source += f"; val balanced accuracy {c['val_balanced_accuracy']['uncorrected']:.4f} -> "
        source += f"{c['val_balanced_accuracy']['corrected']:.4f}"
    return (
        f"prior correction: strength {c['strength']:.1f} of the train class prior taken out of the logits ({source}); "
        f"{result['split']} balanced accuracy {was['balanced_accuracy']:.4f} -> {result['balanced_accuracy']:.4f}, "
        f"accuracy {was['accuracy']:.4f} -> {result['accuracy']:.4f}, worst class recall "
        f"{c['worst_recall_without']:.4f} -> {_worst_recall(result):.4f}; export serves the corrected model"
    )


def _worst_recall(result: dict) -> float:
    return min(c["recall"] for c in result["per_class"].values() if c["support"])


def baselines_note(result: dict) -> str:
    """The model beside the trivial baselines on the same split."""
    trivial, low_high = result["trivial"], result["intervals"]["balanced_accuracy"]
    majority = trivial["majority"]
    return (
        f"baselines on the {result['split']} split: always answering {majority['class']!r} (the most frequent "
        f"train class) {majority['accuracy']:.4f}, random guesses in train proportions {trivial['stratified']:.4f}, "
        f"chance {trivial['chance']:.4f}; the model's balanced accuracy {result['balanced_accuracy']:.4f} "
        f"(95% CI {low_high[0]:.4f}-{low_high[1]:.4f})"
    )
