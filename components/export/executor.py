"""export executor: every deployable file, each measured in its own runtime and gated.

Files, as ``export.*`` asks: the TF Serving SavedModel; TFLite float32, float16, dynamic-range
int8 and full-integer int8; pruned and QAT int8 from the tfmot bridge (``compression.py``);
ONNX. Each is scored on the split evaluate scored, in its own runtime (the SavedModel's
serving signature on encoded bytes, ai-edge-litert, onnxruntime), and measured: raw and
gzipped size, sparsity read back from the file, batch-1 latency (``measure.py``). No TFLite
file may need Flex (Select-TF) ops. Each artifact's gate (accuracy drop against the Keras
model, size) is checked and recorded; push publishes only what passed.

Writes ``serving/<name>/1/``, ``tflite/`` (with ``labels.txt`` and ``preprocessing.json``),
``model.onnx``, and ``artifacts.json`` + ``artifacts.md``: one table of every file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from visionpipe.components.common.dataset import encoded_images, image_dataset
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.common.trained_model import load_trained, trained_model_config
from visionpipe.components.evaluate.metrics import accuracy
from visionpipe.components.export import saved_model, tflite
from visionpipe.components.export.compression import FILES, compress, describe_report, techniques
from visionpipe.components.export.distill import calibrated, distill
from visionpipe.components.export.gates import check_gates, table
from visionpipe.components.export.measure import latencies, sizes, tflite_sparsity
from visionpipe.components.export.spec import Inputs, Outputs, Params
from visionpipe.components.export.tflite_metadata import embed, metadata_python
from visionpipe.models.temperature import with_temperature
from visionpipe.models.tta import flip_averaged
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext
from visionpipe.serving.tflite_runner import TFLiteClassifier

SERVING_VERSION = "1"  # push assigns the version at the serving destination
ARTIFACTS_FILE = "artifacts.json"


def served_model(trained, temperature: float, tta_flip: bool):
    """The model every exported file is made from: the trained one at evaluate's temperature,
    and with ``tta_flip`` the average of those calibrated probabilities over each image and its
    mirror image."""
    model = with_temperature(trained, temperature)
    return flip_averaged(model) if tta_flip else model


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.export
    trained, spec, classes = load_trained(inputs.model.path)
    temperature = inputs.evaluation.temperature
    model = served_model(trained, temperature, cfg.tta_flip)
    if temperature != 1.0:
        ctx.log(
            f"every model exported from the trained one divides its logits by the temperature {temperature:.3f} "
            "evaluate fitted on val"
        )
    if cfg.tta_flip:
        ctx.log("the exported models average each image with its mirror image (export.tta_flip)")
    examples, out = inputs.examples.path, outputs.exported_model.path
    split = inputs.evaluation.split
    score = Scorer(ctx, split, inputs.examples.split_counts[split])
    data = image_dataset(examples, split, spec, len(classes), batch_size=256)

    version_dir = out / ExportedModel.SERVING / cfg.model_name / SERVING_VERSION
    saved_model.export_saved_model(model, spec, classes, version_dir)
    ctx.log(f"SavedModel for TF Serving written to {version_dir}")
    serve = saved_model.load_signature(version_dir)
    results = {
        # With tta_flip the exported model is not the evaluated one: it is scored here too.
        "keras": {
            "accuracy": score("Keras", data, model.predict_on_batch, True)
            if cfg.tta_flip
            else inputs.evaluation.accuracy
        },
        "saved_model": {
            "accuracy": score(
                "SavedModel",
                encoded_images(examples, split, batch_size=256),
                lambda image_bytes: saved_model.served_probabilities(serve, image_bytes),
                one_hot=False,
            ),
            "size_bytes": sum(p.stat().st_size for p in version_dir.rglob("*") if p.is_file()),
        },
    }

    tflite_dir = out / ExportedModel.TFLITE
    tflite_dir.mkdir()
    (tflite_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    shutil.copy(inputs.model.path / "preprocessing.json", tflite_dir / "preprocessing.json")
    files = _convert(model, cfg, examples, spec, len(classes), params.seed, tflite_dir, ctx)
    model_config = trained_model_config(inputs.model.path)
    train_images = inputs.examples.split_counts["train"]
    for technique in techniques(cfg.compression):  # pruned and QAT files come from the tfmot bridge
        name = f"tflite_{technique}_int8"
        try:
            path, report = compress(
                technique, trained, model_config, spec, len(classes), train_images, examples, cfg.compression,
                params.seed, temperature, tflite_dir, ctx,
            )  # fmt: skip
        except UserError as err:  # an optional file: recorded as failed, kept out of push; the rest stands
            (tflite_dir / FILES[technique]).unlink(missing_ok=True)
            results[name] = {"gate": f"failed: not made: {err}"}
            ctx.log(f"{name} not made, the other files stand: {err}")
            continue
        ctx.log(describe_report(report))
        files[name] = path
    if cfg.compression.distill.student:
        student = distill(
            trained, cfg.compression.distill, spec, len(classes), examples, train_images,
            cfg.compression.batch_size, params.seed, ctx,
        )  # fmt: skip
        if temperature != 1.0:  # calibrated like the teacher (evaluate fitted one), with its own temperature
            student, _, note = calibrated(student, examples, spec, len(classes), inputs.examples.split_counts["val"])
            ctx.log(note)
        student_file = tflite_dir / "model_student_int8.tflite"
        student_file.write_bytes(
            tflite.convert_int8(student, _calibration(examples, spec, len(classes), params.seed, cfg))
        )
        files["tflite_student_int8"] = student_file
    for name, path in files.items():  # converted here, by the tfmot bridge or from the student
        flex = tflite.flex_ops(path.read_bytes())
        if flex:
            raise UserError(f"{name} needs TensorFlow (Flex) ops a phone runtime lacks: {', '.join(flex)}")
    python = metadata_python(cfg.metadata_python)
    if python is not None:  # before the files are measured: the metadata is part of the file
        for path in files.values():
            embed(python, path, tflite_dir / "labels.txt")
    ctx.log(
        f"TFLite metadata (labels, normalisation) embedded with tflite-support ({python})"
        if python is not None
        else "no TFLite metadata: tflite-support's virtualenv is not set up (make install creates it)"
    )
    sample = next(iter(data))[0].numpy()[:1]
    for name, path in files.items():
        runner = TFLiteClassifier(path)
        results[name] = {
            "accuracy": score(name, data, lambda images, r=runner: r.predict(images.numpy()), one_hot=True),
            **sizes(path),
            "sparsity": round(tflite_sparsity(path), 4),
            **(latencies(lambda n, p=path: TFLiteClassifier(p, n).predict, sample) if cfg.latency else {}),
        }
    if cfg.onnx:
        results["onnx"] = _onnx(model, out / "model.onnx", data, score, sample, cfg.latency)

    check_gates(results, cfg)
    (out / ARTIFACTS_FILE).write_text(json.dumps(results, indent=2))
    artifacts_table = table(results, split)
    (out / "artifacts.md").write_text(artifacts_table + "\n")
    for line in artifacts_table.splitlines():
        ctx.log(line)
    scored = {name: r["accuracy"] for name, r in results.items() if "accuracy" in r}  # not: files not made
    summary = {f"{name}_accuracy": accuracy for name, accuracy in scored.items()}
    summary["failed_gates"] = {name: r["gate"] for name, r in results.items() if r.get("gate", "passed") != "passed"}
    passed = [name for name in results if name != "keras" and name not in summary["failed_gates"]]
    outputs.exported_model.properties.update(
        summary,
        model_name=cfg.model_name,
        serving_dir=str(Path(ExportedModel.SERVING) / cfg.model_name),
        passed=passed,
        tflite_files={name: str(Path(ExportedModel.TFLITE) / path.name) for name, path in files.items()},
    )
    summary["notes"] = [
        f"{split} accuracy " + ", ".join(f"{name} {accuracy:.4f}" for name, accuracy in scored.items()),
        *(f"{name} gate {reason}" for name, reason in summary["failed_gates"].items()),
    ]
    return summary


def _convert(model, cfg, examples: Path, spec, num_classes: int, seed: int, tflite_dir: Path, ctx) -> dict[str, Path]:
    """The TFLite files the config asks for: name -> path."""

    def int8():
        return tflite.convert_int8(model, _calibration(examples, spec, num_classes, seed, cfg))

    conversions = {
        "tflite_float": (cfg.tflite_float, "model_float.tflite", lambda: tflite.convert_float(model)),
        "tflite_float16": (cfg.tflite_float16, "model_float16.tflite", lambda: tflite.convert_float16(model)),
        "tflite_dynamic_int8": (
            cfg.tflite_dynamic_int8, "model_dynamic_int8.tflite", lambda: tflite.convert_dynamic_range(model)
        ),
        "tflite_int8": (cfg.tflite_int8, "model_int8.tflite", int8),
    }  # fmt: skip
    files = {}
    for name, (wanted, filename, convert) in conversions.items():
        if not wanted:
            continue
        ctx.log(f"converting {name} ...")
        (tflite_dir / filename).write_bytes(convert())
        files[name] = tflite_dir / filename
    return files


def _calibration(examples: Path, spec, num_classes: int, seed: int, cfg):
    calibration = (
        image_dataset(examples, "train", spec, num_classes, batch_size=1)
        .unbatch()
        .shuffle(4096, seed=seed)
        .batch(1)
        .take(cfg.calibration_samples)
    )
    return (x.numpy() for x, _ in calibration)


def _onnx(model, path: Path, data, score, sample: np.ndarray, latency: bool) -> dict:
    from visionpipe.components.export.onnx_model import OnnxClassifier, export_onnx

    export_onnx(model, path)
    runner = OnnxClassifier(path)
    result = {"accuracy": score("ONNX", data, lambda images: runner.predict(images.numpy()), True), **sizes(path)}
    if latency:
        result.update(latencies(lambda threads: OnnxClassifier(path, threads).predict, sample))
    return result


class Scorer:
    """Accuracy of one runtime on the evaluated split, with progress."""

    def __init__(self, ctx: StageContext, split: str, images: int):
        self._ctx, self._split, self._images = ctx, split, images

    def __call__(self, runtime: str, batches, predict, one_hot: bool) -> float:
        with self._ctx.progress(f"scoring {runtime} on {self._split}", self._images, "images") as progress:
            return accuracy(*predict_batches(batches, predict, one_hot=one_hot, progress=progress))
