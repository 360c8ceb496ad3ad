"""evaluate executor: scores the trained model on the test split (val when there is no test
split) and decides the Blessing."""

from __future__ import annotations

import json

import numpy as np

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.evaluate.metrics import classification_metrics
from visionpipe.components.evaluate.spec import Inputs, Outputs, Params
from visionpipe.models.tta import tta_predict
from visionpipe.pipeline.config import ThresholdConfig
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext


def check_thresholds(result: dict, thresholds: ThresholdConfig) -> tuple[list[str], list[str]]:
    """(every threshold the model misses, every threshold that does not apply), as sentences
    naming the config key."""
    failed, skipped = [], []
    if result["accuracy"] < thresholds.min_accuracy:
        failed.append(f"accuracy {result['accuracy']:.4f} < evaluate.thresholds.min_accuracy {thresholds.min_accuracy}")
    if "top_k_accuracy" not in result:
        if thresholds.min_top_k_accuracy:
            skipped.append(
                f"evaluate.thresholds.min_top_k_accuracy not checked: top-k needs more classes than "
                f"evaluate.top_k, and there are {len(result['classes'])}"
            )
    elif result["top_k_accuracy"] < thresholds.min_top_k_accuracy:
        failed.append(
            f"top-{result['top_k']} accuracy {result['top_k_accuracy']:.4f} < "
            f"evaluate.thresholds.min_top_k_accuracy {thresholds.min_top_k_accuracy}"
        )
    for name, per_class in result["per_class"].items():
        if per_class["recall"] < thresholds.min_class_recall:
            failed.append(
                f"recall of class {name!r} {per_class['recall']:.4f} < "
                f"evaluate.thresholds.min_class_recall {thresholds.min_class_recall}"
            )
    return failed, skipped


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


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    split = inputs.examples.evaluation_split
    if split is None:
        raise UserError("there is no test or val split to evaluate on; rerun ingest with data.split.test above 0")
    model, spec, classes = load_trained(inputs.model.path)
    data = image_dataset(inputs.examples.path, split, spec, len(classes), batch_size=256)
    images = inputs.examples.split_counts[split]
    with ctx.progress(f"scoring the {split} split", images, "images") as progress:
        labels, probabilities = predict_batches(data, model.predict_on_batch, one_hot=True, progress=progress)
    result = classification_metrics(labels, probabilities, classes, params.evaluate.top_k)
    result["split"] = split
    tta = params.evaluate.tta
    if tta != "none":  # reported next to the plain figures, which the gate judges (what is served)
        with ctx.progress(f"scoring with {tta} test-time augmentation", images, "images") as progress:
            _, augmented = predict_batches(
                data, lambda x: tta_predict(lambda v: model(v, training=False), x, tta), one_hot=True, progress=progress
            )
        tta_result = classification_metrics(labels, augmented, classes, params.evaluate.top_k)
        result["tta"] = {"mode": tta, **{k: tta_result[k] for k in ("accuracy", "macro_f1")}}
    failed, skipped = check_thresholds(result, params.evaluate.thresholds)

    (outputs.evaluation.path / "metrics.json").write_text(json.dumps(result, indent=2))
    np.save(outputs.evaluation.path / "probabilities.npy", probabilities)
    blessing = {
        "blessed": not failed,
        "reasons": failed or ["all thresholds passed"],
        "not_checked": skipped,
        "thresholds": vars(params.evaluate.thresholds),
        "model_uri": inputs.model.uri,
    }
    (outputs.blessing.path / "blessing.json").write_text(json.dumps(blessing, indent=2))
    outputs.blessing.properties.update(blessed=not failed, reasons=failed)
    headline = {k: result[k] for k in ("accuracy", "top_k_accuracy", "macro_f1", "examples") if k in result}
    if "tta" in result:
        headline["tta_accuracy"] = result["tta"]["accuracy"]
    outputs.evaluation.properties.update(headline, split=split)
    top_k = f", top-{result['top_k']} {result['top_k_accuracy']:.4f}" if "top_k" in result else ""
    verdict = "BLESSED (all thresholds passed)" if not failed else "NOT blessed: " + "; ".join(failed)
    with_tta = f" ({result['tta']['mode']} TTA {result['tta']['accuracy']:.4f})" if "tta" in result else ""
    notes = [
        f"{split} accuracy {result['accuracy']:.4f}{with_tta}{top_k}, macro F1 {result['macro_f1']:.4f} on "
        f"{result['examples']:,} images" + (" (there is no test split)" if split != "test" else ""),
        per_class_note(result),
        f"gate: {verdict}" + "".join(f"; {s}" for s in skipped),
    ]
    for note in notes:
        ctx.log(note)
    return {**headline, "blessed": not failed, "notes": notes}
