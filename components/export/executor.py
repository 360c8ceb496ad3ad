"""export executor: writes the serving SavedModel and TFLite files, then re-evaluates each
through its own runtime on the test split and records the accuracies side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from visionpipe.components.common.dataset import encoded_images, image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained, trained_model_config
from visionpipe.components.evaluate.metrics import accuracy
from visionpipe.components.export import saved_model, tflite
from visionpipe.components.export.compression import compress, techniques
from visionpipe.components.export.measure import sizes, tflite_sparsity
from visionpipe.components.export.spec import Inputs, Outputs, Params
from visionpipe.models.tta import flip_averaged
from visionpipe.pipeline.stage import StageContext
from visionpipe.serving.tflite_runner import TFLiteClassifier

SERVING_VERSION = "1"  # push assigns the version at the serving destination


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.export
    trained, spec, classes = load_trained(inputs.model.path)
    model = trained
    if cfg.tta_flip:  # every exported file averages each image with its mirror image
        model = flip_averaged(model)
        ctx.log("the exported models average each image with its mirror image (export.tta_flip)")
    examples, out = inputs.examples.path, outputs.exported_model.path
    split = inputs.evaluation.split
    score = Scorer(ctx, split, inputs.examples.split_counts[split])

    version_dir = out / "serving" / cfg.model_name / SERVING_VERSION
    saved_model.export_saved_model(model, spec, classes, version_dir)
    ctx.log(f"SavedModel for TF Serving written to {version_dir}")
    serve = saved_model.load_signature(version_dir)
    results = {
        # With tta_flip the exported model is not the evaluated one: it is scored here too.
        "keras": {
            "accuracy": score(
                "Keras", image_dataset(examples, split, spec, len(classes), 256), model.predict_on_batch, True
            )
            if cfg.tta_flip
            else inputs.evaluation.accuracy
        },
        "saved_model": {
            "accuracy": score(
                "SavedModel",
                encoded_images(examples, split, batch_size=256),
                lambda image_bytes: serve(image_bytes=image_bytes)["probabilities"],
                one_hot=False,
            ),
            "size_bytes": _size(version_dir),
        },
    }

    tflite_dir = out / "tflite"
    tflite_dir.mkdir()
    (tflite_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    shutil.copy(inputs.model.path / "preprocessing.json", tflite_dir / "preprocessing.json")
    data = image_dataset(examples, split, spec, len(classes), batch_size=256)
    conversions = []
    if cfg.tflite_float:
        conversions.append(("tflite_float", "model_float.tflite", lambda: tflite.convert_float(model)))
    if cfg.tflite_int8:
        calibration = (
            image_dataset(examples, "train", spec, len(classes), batch_size=1)
            .unbatch()
            .shuffle(4096, seed=params.seed)
            .batch(1)
            .take(cfg.calibration_samples)
        )
        images = (x.numpy() for x, _ in calibration)
        conversions.append(("tflite_int8", "model_int8.tflite", lambda: tflite.convert_int8(model, images)))
    for name, filename, convert in conversions:
        ctx.log(f"converting {name} ...")
        (tflite_dir / filename).write_bytes(convert())
    model_config = trained_model_config(inputs.model.path)
    train_images = inputs.examples.split_counts["train"]
    for technique in techniques(cfg.compression):  # pruned and QAT files come from the tfmot bridge
        path, _ = compress(
            technique, trained, model_config, spec, len(classes), train_images, examples, cfg.compression,
            params.seed, tflite_dir, ctx,
        )  # fmt: skip
        conversions.append((f"tflite_{technique}_int8", path.name, None))
    for name, filename, _ in conversions:
        path = tflite_dir / filename
        runner = TFLiteClassifier(path)
        accuracy_of = score(name, data, lambda images, r=runner: r.predict(images.numpy()), one_hot=True)
        results[name] = {"accuracy": accuracy_of, **sizes(path), "sparsity": round(tflite_sparsity(path), 4)}
    for runtime, r in results.items():
        ctx.log(
            f"{runtime:<22} {split} accuracy {r['accuracy']:.4f}"
            + (f", {r['size_bytes'] / 1024:.0f} KiB" if "size_bytes" in r else "")
            + (f" ({r['gzip_bytes'] / 1024:.0f} KiB gzipped, {r['sparsity']:.0%} zeros)" if "gzip_bytes" in r else "")
        )

    summary = {f"{runtime}_accuracy": r["accuracy"] for runtime, r in results.items()}
    if "tflite_int8" in results:
        drop = results["keras"]["accuracy"] - results["tflite_int8"]["accuracy"]
        summary["int8_accuracy_drop"] = drop
        summary["int8_within_tolerance"] = drop <= cfg.max_int8_accuracy_drop
        if drop > cfg.max_int8_accuracy_drop:
            ctx.log(
                f"WARNING: int8 TFLite loses {drop:.4f} accuracy, more than "
                f"export.max_int8_accuracy_drop={cfg.max_int8_accuracy_drop}"
            )
    (out / "accuracy.json").write_text(json.dumps(results, indent=2))
    outputs.exported_model.properties.update(
        summary, model_name=cfg.model_name, serving_dir=str(Path("serving") / cfg.model_name)
    )
    summary["notes"] = [
        f"{split} accuracy " + ", ".join(f"{runtime} {r['accuracy']:.4f}" for runtime, r in results.items())
    ]
    return summary


class Scorer:
    """Accuracy of one runtime on the evaluated split, with progress."""

    def __init__(self, ctx: StageContext, split: str, images: int):
        self._ctx, self._split, self._images = ctx, split, images

    def __call__(self, runtime: str, batches, predict, one_hot: bool) -> float:
        with self._ctx.progress(f"scoring {runtime} on {self._split}", self._images, "images") as progress:
            return accuracy(*predict_batches(batches, predict, one_hot=one_hot, progress=progress))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
