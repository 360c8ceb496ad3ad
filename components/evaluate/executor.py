"""evaluate executor: scores the trained model on the test split and decides the Blessing."""

from __future__ import annotations

import json

import numpy as np

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.evaluate.metrics import classification_metrics
from visionpipe.components.evaluate.spec import Inputs, Outputs, Params
from visionpipe.pipeline.config import ThresholdConfig
from visionpipe.pipeline.stage import StageContext


def check_thresholds(result: dict, thresholds: ThresholdConfig) -> list[str]:
    """Every threshold the model misses, as a sentence naming the config key."""
    failed = []
    if result["accuracy"] < thresholds.min_accuracy:
        failed.append(f"accuracy {result['accuracy']:.4f} < evaluate.thresholds.min_accuracy {thresholds.min_accuracy}")
    if result["top_k_accuracy"] < thresholds.min_top_k_accuracy:
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
    return failed


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    model, spec, classes = load_trained(inputs.model.path)
    test = image_dataset(inputs.examples.path, "test", spec, len(classes), batch_size=256)
    labels, probabilities = predict_batches(test, model.predict_on_batch, one_hot=True)
    result = classification_metrics(labels, probabilities, classes, params.evaluate.top_k)
    failed = check_thresholds(result, params.evaluate.thresholds)

    (outputs.evaluation.path / "metrics.json").write_text(json.dumps(result, indent=2))
    np.save(outputs.evaluation.path / "probabilities.npy", probabilities)
    blessing = {
        "blessed": not failed,
        "reasons": failed or ["all thresholds passed"],
        "thresholds": vars(params.evaluate.thresholds),
        "model_uri": inputs.model.uri,
    }
    (outputs.blessing.path / "blessing.json").write_text(json.dumps(blessing, indent=2))
    outputs.blessing.properties.update(blessed=not failed, reasons=failed)
    headline = {k: result[k] for k in ("accuracy", "top_k_accuracy", "macro_f1", "examples")}
    outputs.evaluation.properties.update(headline)
    ctx.log(
        f"test accuracy {result['accuracy']:.4f}, top-{result['top_k']} {result['top_k_accuracy']:.4f}, "
        f"macro F1 {result['macro_f1']:.4f} on {result['examples']} images; "
        + ("BLESSED" if not failed else "NOT blessed: " + "; ".join(failed))
    )
    return {**headline, "blessed": not failed}
