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

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.label_metrics import mean_ap
from visionpipe.components.common.scoring import accuracy, predict_batches
from visionpipe.components.common.trained_model import load_trained, trained_model_config
from visionpipe.components.export import tflite
from visionpipe.components.export.channel_pruning import SIMD_CHANNELS, pruned
from visionpipe.components.export.compression import describe_report
from visionpipe.components.export.config import DistillConfig
from visionpipe.components.export.distill import calibrated, distill, student_of
from visionpipe.components.export.gates import check_gates, gate_of, table
from visionpipe.components.export.measure import latencies, sizes, tflite_sparsity
from visionpipe.components.export.spec import Inputs, Outputs, Params
from visionpipe.components.export.targets import CHANNELS, ONNX, SAVED_MODEL, Target, converter_of, made
from visionpipe.components.export.tflite_metadata import embed, metadata_python, task_library_verdict
from visionpipe.data.records import encoded_images
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.models.temperature import with_temperature
from visionpipe.models.tta import flip_averaged
from visionpipe.pipeline.artifacts import ExportedModel, Model
from visionpipe.pipeline.checks import Check, Outcome
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext
from visionpipe.serving.served_signature import load_signature, served_probabilities
from visionpipe.serving.tflite_runner import TFLiteClassifier

SERVING_VERSION = "1"  # push assigns the version at the serving destination


def served_model(trained, temperature: float, tta_flip: bool, logit_offsets: list[float] | None = None):
    """The model every exported file is made from: the trained one at evaluate's temperature
    (and prior correction's logit offsets), and with ``tta_flip`` the average of those
    probabilities over each image and its mirror image."""
    model = with_temperature(trained, temperature, logit_offsets=logit_offsets)
    return flip_averaged(model) if tta_flip else model


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every file of one export is made from."""

    trained: keras.Model  # as trained: the tfmot bridge and distillation start from it
    model: keras.Model  # what the files serve: calibrated, flip-averaged with tta_flip
    spec: PreprocessingSpec
    classes: list[str]
    inputs: Inputs
    params: Params

    @property
    def examples(self) -> Path:
        return self.inputs.examples.path

    @property
    def multi_label(self) -> bool:
        return self.inputs.examples.multi_label

    @property
    def metric(self) -> str:
        """What each file is scored and gated on: accuracy, or mAP for a multi-label model."""
        return "map" if self.multi_label else "accuracy"


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.export
    trained, spec, classes = load_trained(inputs.model.path)
    temperature, offsets = inputs.evaluation.temperature, inputs.evaluation.logit_offsets
    job = _Job(trained, served_model(trained, temperature, cfg.tta_flip, offsets), spec, classes, inputs, params)
    if offsets is not None:
        ctx.log(
            "every model exported from the trained one adds the prior correction's logit offsets evaluate fitted on val"
        )
    if temperature != 1.0:
        ctx.log(
            f"every model exported from the trained one divides its logits by the temperature {temperature:.3f} "
            "evaluate fitted on val"
        )
    if cfg.tta_flip:
        ctx.log("the exported models average each image with its mirror image (export.tta_flip)")
    out, split, metric = outputs.exported_model.path, inputs.evaluation.split, job.metric
    score = Scorer(ctx, split, inputs.examples.split_counts[split], job.multi_label)
    data = image_dataset(job.examples, split, spec, len(classes), batch_size=256, multi_label=job.multi_label)
    results = _saved_model(job, out, data, score, ctx)

    tflite_dir = out / ExportedModel.TFLITE
    tflite_dir.mkdir()
    (tflite_dir / ExportedModel.LABELS).write_text("\n".join(classes) + "\n")
    shutil.copy(inputs.model.path / Model.PREPROCESSING, tflite_dir / ExportedModel.PREPROCESSING)
    if inputs.evaluation.thresholds is not None:  # multi-label: what a phone needs to decide each label
        (tflite_dir / ExportedModel.THRESHOLDS).write_text(json.dumps(inputs.evaluation.thresholds))
    files = _convert(job, tflite_dir, ctx)
    files.update(_bridge_files(job, tflite_dir, results, ctx))
    files.update(_distilled_files(job, tflite_dir, results, ctx))
    python = _check_and_embed(files, cfg, tflite_dir, ctx)
    task_library = _task_library_verdicts(python, files, spec)
    sample = next(iter(data))[0].numpy()[:1]
    for name, path in files.items():
        runner = TFLiteClassifier(path)
        results[name] = {
            metric: score(name, data, lambda images, r=runner: r.predict(images.numpy()), one_hot=True),
            **sizes(path),
            "sparsity": round(tflite_sparsity(path), 4),
            **(latencies(lambda n, p=path: TFLiteClassifier(p, n).predict, sample) if cfg.latency else {}),
            **({"task_library": task_library[name]} if name in task_library else {}),
        }
    if ONNX in made(cfg):
        results[ONNX.name] = _onnx(job, out / ONNX.folder / ONNX.file, data, score, sample)
    check_gates(results, cfg, metric)
    return _record(outputs.exported_model, results, files, cfg, split, ctx, metric)


def _not_made(name: str, why: str, ctx: StageContext) -> dict:
    """The row of a file that cannot be made for this model (push leaves it out)."""
    ctx.log(f"{name} not made, the other files stand: {why}")
    return {"gate": Check(name, Outcome.FAILED, f"not made: {why}").as_dict()}


def _saved_model(job: _Job, out: Path, data, score: Scorer, ctx: StageContext) -> dict[str, dict]:
    """Writes the SavedModel for TF Serving; the results rows of the Keras model and of it."""
    cfg, split = job.params.export, job.inputs.evaluation.split
    version_dir = out / SAVED_MODEL.folder / cfg.model_name / SERVING_VERSION
    converter_of(SAVED_MODEL)(job.model, job.spec, job.classes, version_dir, job.inputs.evaluation.thresholds)
    ctx.log(f"SavedModel for TF Serving written to {version_dir}")
    serve = load_signature(version_dir)
    encoded = encoded_images(job.examples, split, batch_size=256, multi_hot=len(job.classes) if job.multi_label else 0)
    return {
        # With tta_flip the exported model is not the evaluated one: it is scored here too.
        "keras": {
            job.metric: score("Keras", data, job.model.predict_on_batch, True)
            if cfg.tta_flip
            else job.inputs.evaluation.score(job.metric)
        },
        SAVED_MODEL.name: {
            job.metric: score("SavedModel", encoded, lambda b: served_probabilities(serve, b), False),
            "size_bytes": sum(p.stat().st_size for p in version_dir.rglob("*") if p.is_file()),
        },
    }


def _bridge_files(job: _Job, tflite_dir: Path, results: dict, ctx: StageContext) -> dict[str, Path]:
    """The pruned and QAT files from the tfmot bridge. Each is optional: one the bridge could not
    make gets a failed row in ``results`` (so push leaves it out) and the rest of the export stands."""
    files = {}
    export, examples = job.params.export, job.examples
    model_config, train_images = trained_model_config(job.inputs.model.path), job.inputs.examples.split_counts["train"]
    for target in made(export, "trained"):
        name = target.name
        if job.multi_label:
            results[name] = _not_made(name, "the tfmot bridge fine-tunes single-label models only", ctx)
            continue
        try:
            path, report = converter_of(target)(
                target, job.trained, model_config, job.spec, len(job.classes), train_images, examples, export,
                job.params.seed, job.inputs.evaluation.temperature, job.inputs.evaluation.logit_offsets, tflite_dir,
                ctx,
            )  # fmt: skip
        except UserError as err:
            (tflite_dir / target.file).unlink(missing_ok=True)
            results[name] = {"gate": Check(name, Outcome.FAILED, f"not made: {err}").as_dict()}
            ctx.log(f"{name} not made, the other files stand: {err}")
            continue
        ctx.log(describe_report(report))
        files[name] = path
    return files


def _distilled_files(job: _Job, tflite_dir: Path, results: dict, ctx: StageContext) -> dict[str, Path]:
    """The files of models trained from the trained one by distillation: its channel-pruned copy
    and the registered student. Both are made before either learns: distillation freezes the
    teacher's layers, and a copy made afterwards would inherit frozen layers."""
    export, compression = job.params.export, job.params.export.compression
    students: dict[Target, tuple[keras.Model, DistillConfig]] = {}
    for target in made(export, "distilled"):
        if job.multi_label:
            results[target.name] = _not_made(target.name, "distillation trains single-label models only", ctx)
        elif target is CHANNELS:
            channels = compression.channels
            pruning = pruned(job.trained, channels.fraction)
            ctx.log(pruning.describe())
            if not pruning.removed:  # a file as slow as tflite_int8 would only mislead
                results[target.name] = _not_made(
                    target.name,
                    f"channel pruning at fraction {channels.fraction:g} removes no filter of this model (each "
                    "convolution's width is tied to a residual add, a gate or the output, or rounding to multiples "
                    f"of {SIMD_CHANNELS} keeps every filter)",
                    ctx,
                )
                continue
            students[target] = (
                pruning.network,
                DistillConfig(epochs=channels.epochs, learning_rate=channels.learning_rate),
            )
        else:
            students[target] = (
                student_of(compression.distill, job.spec, len(job.classes), job.examples, job.params.seed),
                compression.distill,
            )
    files = {}
    for target, (student, config) in students.items():
        files[target.name] = _distilled_file(job, target, student, config, tflite_dir, ctx)
    return files


def _distilled_file(
    job: _Job, target: Target, student: keras.Model, config: DistillConfig, tflite_dir: Path, ctx: StageContext
) -> Path:
    """``student`` distilled from the trained model, as a full-integer int8 file, calibrated like
    the teacher (with its own temperature) when evaluate calibrated the teacher."""
    cfg, seed, counts = job.params.export, job.params.seed, job.inputs.examples.split_counts
    student = distill(
        job.trained, student, config, job.spec, len(job.classes), job.examples, counts["train"],
        cfg.compression.batch_size, seed, ctx,
    )  # fmt: skip
    offsets = job.inputs.evaluation.logit_offsets
    if job.inputs.evaluation.temperature != 1.0 or offsets is not None:
        student, _, note = calibrated(student, job.examples, job.spec, len(job.classes), counts["val"], offsets)
        ctx.log(note)
    path = tflite_dir / target.file
    calibration = _calibration(job.examples, job.spec, len(job.classes), seed, cfg)
    path.write_bytes(converter_of(target)(student, calibration, cfg.int8_float_ops))
    return path


def _check_and_embed(files: dict[str, Path], cfg, tflite_dir: Path, ctx: StageContext) -> Path | None:
    """Refuses a file a phone runtime cannot run (Flex ops); embeds the TFLite metadata (labels,
    normalisation) before the files are measured, as it is part of each file. Returns the
    tflite-support Python (None: not set up)."""
    for name, path in files.items():  # converted here, by the tfmot bridge or from the student
        flex = tflite.flex_ops(path.read_bytes())
        if flex:
            raise UserError(f"{name} needs TensorFlow (Flex) ops a phone runtime lacks: {', '.join(flex)}")
    python = metadata_python(cfg.metadata_python)
    if python is not None:
        for path in files.values():
            thresholds = tflite_dir / ExportedModel.THRESHOLDS  # a multi-label model's
            embed(python, path, tflite_dir / ExportedModel.LABELS, thresholds if thresholds.is_file() else None)
    ctx.log(
        f"TFLite metadata (labels, normalisation) embedded with tflite-support ({python})"
        if python is not None
        else "no TFLite metadata: tflite-support's virtualenv is not set up (make install creates it)"
    )
    return python


def _task_library_verdicts(python: Path | None, files: dict[str, Path], spec) -> dict[str, str]:
    """Whether each file runs in the Task Library's ImageClassifier, tried on an RGB image of the
    model's input size (it takes 3-channel inputs only, and an older runtime than the
    converter's); nothing without tflite-support."""
    if python is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.png"
        Image.new("RGB", (spec.width, spec.height), (128, 128, 128)).save(probe)
        return {name: task_library_verdict(python, path, probe) for name, path in files.items()}


def _record(
    exported: ExportedModel, results: dict, files: dict[str, Path], cfg, split: str, ctx, metric: str = "accuracy"
) -> dict:
    """Writes the results table (``artifacts.json``, ``artifacts.md``, the log) and the artifact's
    properties; returns the stage summary."""
    out = exported.path
    (out / ExportedModel.TABLE).write_text(json.dumps(results, indent=2))
    artifacts_table = table(results, split, metric)
    (out / "artifacts.md").write_text(artifacts_table + "\n")
    for line in artifacts_table.splitlines():
        ctx.log(line)
    scored = {name: r[metric] for name, r in results.items() if metric in r}  # not: files not made
    summary = {f"{name}_{metric}": value for name, value in scored.items()}
    gates = {name: gate_of(name, row) for name, row in results.items() if name != "keras"}
    failed = {name: check for name, check in gates.items() if check is not None and check.outcome is not Outcome.PASSED}
    summary["failed_gates"] = {name: check.as_dict() for name, check in failed.items()}
    passed = [name for name in gates if name not in failed]
    exported.properties.update(
        summary,
        model_name=cfg.model_name,
        metric=metric,
        serving_dir=str(Path(ExportedModel.SERVING) / cfg.model_name),
        passed=passed,
        tflite_files={name: str(Path(ExportedModel.TFLITE) / path.name) for name, path in files.items()},
    )
    summary["notes"] = [
        f"{split} {metric} " + ", ".join(f"{name} {value:.4f}" for name, value in scored.items()),
        *(f"{name} gate {check}" for name, check in failed.items()),
    ]
    return summary


def _convert(job: _Job, tflite_dir: Path, ctx) -> dict[str, Path]:
    """The TFLite files converted from the served model that the config asks for: name -> path."""
    files, cfg = {}, job.params.export
    for target in _tflite_conversions(cfg):
        ctx.log(f"converting {target.name} ...")
        convert = converter_of(target)
        if target.calibrated:
            calibration = _calibration(job.examples, job.spec, len(job.classes), job.params.seed, cfg, job.multi_label)
            data = convert(job.model, calibration, cfg.int8_float_ops)
        else:
            data = convert(job.model)
        (tflite_dir / target.file).write_bytes(data)
        files[target.name] = tflite_dir / target.file
    return files


def _tflite_conversions(cfg) -> list[Target]:
    return [t for t in made(cfg, "served") if t.folder == ExportedModel.TFLITE]


def _calibration(examples: Path, spec, num_classes: int, seed: int, cfg, multi_label: bool = False):
    calibration = (
        image_dataset(examples, "train", spec, num_classes, batch_size=1, multi_label=multi_label)
        .unbatch()
        .shuffle(4096, seed=seed)
        .batch(1)
        .take(cfg.calibration_samples)
    )
    return (x.numpy() for x, _ in calibration)


def _onnx(job: _Job, path: Path, data, score, sample: np.ndarray) -> dict:
    from visionpipe.components.export.onnx_model import OnnxClassifier

    converter_of(ONNX)(job.model, path)
    runner = OnnxClassifier(path)
    result = {job.metric: score("ONNX", data, lambda images: runner.predict(images.numpy()), True), **sizes(path)}
    if job.params.export.latency:
        result.update(latencies(lambda threads: OnnxClassifier(path, threads).predict, sample))
    return result


class Scorer:
    """Accuracy (mAP for a multi-label model) of one runtime on the evaluated split, with progress."""

    def __init__(self, ctx: StageContext, split: str, images: int, multi_label: bool = False):
        self._ctx, self._split, self._images, self._multi_label = ctx, split, images, multi_label

    def __call__(self, runtime: str, batches, predict, one_hot: bool) -> float:
        with self._ctx.progress(f"scoring {runtime} on {self._split}", self._images, "images") as progress:
            if self._multi_label:  # the labels are multi-hot vectors, whatever the batches
                return mean_ap(*predict_batches(batches, predict, one_hot=False, progress=progress))
            return accuracy(*predict_batches(batches, predict, one_hot=one_hot, progress=progress))
