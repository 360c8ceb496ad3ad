"""The one place that uses tensorflow-model-optimization (tfmot): pruning and quantization-aware
training for Keras 3 models, run as its own process.

tfmot 0.8 only takes tf_keras models, and importing it switches the whole process to legacy
Keras (``TF_USE_LEGACY_KERAS=1``). So ``compression.py`` starts this module as a subprocess
with a job file; here the trained architecture is rebuilt in tf_keras from the same registered
builder (builders take the Keras module to build with), the trained weights are copied in,
BatchNormalization layers get the trained model's momentum and frozen state, and then:

- ``prune``: ``prune_low_magnitude`` with a ``PolynomialDecay`` to the target sparsity on the
  convolutions and dense layers (the first convolution and layers with few weights skipped),
  fine-tuned on the train split through the same input pipeline, then ``strip_pruning``;
- ``qat``: quantization-aware training of every layer tfmot supports (``annotate_for_qat``;
  the rest train in float and are quantized after training), fine-tuned the same way;
- ``pqat``: prune, then QAT that keeps the zeros (tfmot's collaborative optimization,
  ``Default8BitPrunePreserveQuantizeScheme``), for the smallest accurate file;

and the result is converted to full-integer int8 TFLite with uint8 input, as export's
post-training int8 file is. The job's report (``report.json``) says what was done.

    python -m visionpipe.components.export.tfmot_bridge job.json
    python -m visionpipe.components.export.tfmot_bridge --check '{"resnet9": {"width": 8}}' '[32, 32, 3]'
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # this process only: tfmot needs tf_keras

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (  # noqa: E402,E501
    Default8BitQuantizeRegistry,  # tfmot does not export it; its quantize_apply asks the same registry
)

from visionpipe.components.common.dataset import image_dataset  # noqa: E402
from visionpipe.components.export import int8  # noqa: E402
from visionpipe.models.classifier import set_batch_norm_states  # noqa: E402
from visionpipe.models.preprocessing import PreprocessingSpec, normalization_layer  # noqa: E402
from visionpipe.models.registry import create_model, entry  # noqa: E402
from visionpipe.models.temperature import with_temperature  # noqa: E402


def classifier_spec(job: dict) -> PreprocessingSpec:
    return PreprocessingSpec(**{**job["spec"], "mean": tuple(job["spec"]["mean"]), "std": tuple(job["spec"]["std"])})


CONVOLUTIONS = (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D)
PRUNABLE = (*CONVOLUTIONS, tf_keras.layers.Dense)


def twin(job: dict) -> tuple[tf_keras.Model, tf_keras.Model, PreprocessingSpec]:
    """(classifier, its network) rebuilt in tf_keras, with the trained weights."""
    spec = classifier_spec(job)
    network = create_model(job["model"], spec.input_shape, job["num_classes"], job["args"], keras=tf_keras)
    weights = np.load(job["weights"])
    values = [weights[f"w{i}"] for i in range(len(weights.files))]
    if [v.shape for v in values] != [tuple(w.shape) for w in network.weights]:
        raise SystemExit(
            f"the tf_keras twin of {job['model']!r} does not have the trained model's weights "
            f"({len(network.weights)} vs {len(values)} tensors): this model cannot go through tfmot"
        )
    network.set_weights(values)
    set_batch_norm_states(network, job["batch_norm"])  # frozen and momentum as trained, not as built
    return _classifier(network, spec, job), network, spec


def _classifier(network: tf_keras.Model, spec: PreprocessingSpec, job: dict) -> tf_keras.Model:
    inputs = tf_keras.Input(spec.input_shape, name="image")
    x = normalization_layer(spec, tf_keras)(inputs) if entry(job["model"]).normalize else inputs
    return tf_keras.Model(inputs, network(x), name=f"{job['model']}_classifier")


def _prunable(layer, job: dict, first_conv: str) -> bool:
    return (
        isinstance(layer, PRUNABLE)
        and layer.name not in job["prune"]["skip_layers"]
        and layer.name != first_conv
        and layer.count_params() >= job["prune"]["min_weights"]
    )


def _default_end(begin: int, frequency: int, steps: int) -> int:
    """At about 80% of the fine-tuning, on a pruning step: masks are only updated every
    ``frequency`` steps, and the target sparsity is reached at the end step exactly."""
    return begin + frequency * max(1, int((0.8 * steps - begin) / frequency))


def prune(network: tf_keras.Model, job: dict, steps: int) -> tuple[tf_keras.Model, list[str]]:
    """The network with its prunable layers wrapped for pruning, and their names."""
    cfg = job["prune"]
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=cfg["target_sparsity"],
        begin_step=cfg["begin_step"],
        end_step=cfg["end_step"] or _default_end(cfg["begin_step"], cfg["frequency"], steps),
        frequency=cfg["frequency"],
    )
    first_conv = next((layer.name for layer in network.layers if isinstance(layer, PRUNABLE)), "")

    def wrap(layer):
        if _prunable(layer, job, first_conv):
            pruned.append(layer.name)
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned: list[str] = []
    return tf_keras.models.clone_model(network, clone_function=wrap), pruned


def annotate_for_qat(network: tf_keras.Model) -> tuple[tf_keras.Model, list[str]]:
    """The network with every layer tfmot can quantize-aware-train annotated, and the names of
    the others (input rescaling, custom layers, attention, hard-swish arithmetic), which train
    in float and are quantized after training from the calibration images, as in the
    post-training file. BatchNormalization right after a convolution is annotated: tfmot
    folds it into the convolution, as the TFLite converter does."""
    registry = Default8BitQuantizeRegistry()
    kept_float: list[str] = []

    def annotate(layer):
        inbound = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else None
        folded = isinstance(layer, tf_keras.layers.BatchNormalization) and isinstance(inbound, CONVOLUTIONS)
        if registry.supports(layer) or folded:
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        if not isinstance(layer, tf_keras.layers.InputLayer):
            kept_float.append(layer.name)
        return layer

    return tf_keras.models.clone_model(network, clone_function=annotate), kept_float


class ReportProgress(tf_keras.callbacks.Callback):
    """Prints the job's progress lines (prefix, steps done over all fine-tuning, loss) that the
    export stage turns into its progress bar; ``done`` carries on from an earlier phase."""

    def __init__(self, job: dict, done: int = 0):
        super().__init__()
        self.prefix, self.done = job["progress_prefix"], done

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done % 10 == 0:
            print(f"{self.prefix}{self.done} {(logs or {}).get('loss', float('nan')):.4f}", flush=True)


def fine_tune(classifier: tf_keras.Model, job: dict, epochs: int, callbacks=()) -> dict:
    spec = classifier_spec(job)
    train = image_dataset(Path(job["examples"]), "train", spec, job["num_classes"], job["batch_size"])
    train = train.unbatch().shuffle(10_000, seed=job["seed"]).batch(job["batch_size"]).repeat()
    classifier.compile(
        optimizer=tf_keras.optimizers.Adam(job["learning_rate"]),
        loss=tf_keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    history = classifier.fit(
        train, epochs=epochs, steps_per_epoch=job["steps_per_epoch"], callbacks=list(callbacks), verbose=0
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def convert_int8(classifier: tf_keras.Model, job: dict) -> bytes:
    spec = classifier_spec(job)
    calibration = image_dataset(Path(job["examples"]), "train", spec, job["num_classes"], batch_size=1).take(
        job["calibration_samples"]
    )

    def representative_dataset():
        for image, _ in calibration:
            yield [tf.cast(image, tf.float32)]

    return int8.convert(tf.lite.TFLiteConverter.from_keras_model(classifier), representative_dataset, job["float_ops"])


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    tf_keras.utils.set_random_seed(job["seed"])
    classifier, network, _ = twin(job)
    technique, report = job["technique"], {"technique": job["technique"]}
    steps = job["epochs"] * job["steps_per_epoch"]
    if technique in ("prune", "pqat"):
        pruned, report["pruned_layers"] = prune(network, job, steps)
        model = _classifier(pruned, classifier_spec(job), job)
        callbacks = [tfmot.sparsity.keras.UpdatePruningStep(), ReportProgress(job)]
        report["prune_history"] = fine_tune(model, job, job["epochs"], callbacks)
        network = tfmot.sparsity.keras.strip_pruning(pruned)
        classifier = _classifier(network, classifier_spec(job), job)
    if technique in ("qat", "pqat"):
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if technique == "pqat" else None
        annotated, report["float_in_qat"] = annotate_for_qat(network)
        quantized = (
            tfmot.quantization.keras.quantize_apply(annotated, scheme)
            if scheme
            else tfmot.quantization.keras.quantize_apply(annotated)
        )
        classifier = _classifier(quantized, classifier_spec(job), job)
        done_before = steps if technique == "pqat" else 0
        report["qat_history"] = fine_tune(classifier, job, job["epochs"], [ReportProgress(job, done_before)])
    # Served probabilities carry evaluate's temperature and prior correction, as the other exported files' do.
    classifier = with_temperature(
        classifier, job["temperature"], keras=tf_keras, logit_offsets=job.get("logit_offsets")
    )
    Path(job["output"]).write_bytes(convert_int8(classifier, job))
    Path(job["report"]).write_text(json.dumps(report, indent=2))


def check(models: dict[str, dict], input_shape: list[int]) -> dict[str, dict]:
    """For the model contract: each model's tf_keras twin (its weight shapes, to compare with the
    Keras 3 model's), the layers pruning wraps, and the layers QAT keeps in float."""
    prune_all = {"target_sparsity": 0.5, "begin_step": 0, "end_step": 0, "frequency": 10, "skip_layers": [],
                 "min_weights": 0}  # fmt: skip
    report = {}
    height, width, channels = input_shape
    for name, args in models.items():
        network = create_model(name, (height, width, channels), 3, args, keras=tf_keras)
        _, pruned = prune(network, {"prune": prune_all}, steps=100)
        annotated, kept_float = annotate_for_qat(network)
        tfmot.quantization.keras.quantize_apply(annotated)
        shapes = [list(w.shape) for w in network.weights]
        report[name] = {"weight_shapes": shapes, "pruned": pruned, "float_in_qat": kept_float}
    return report


if __name__ == "__main__":
    if sys.argv[1] == "--check":  # --check '{"model": {args}}' '[h, w, c]'
        print(json.dumps(check(json.loads(sys.argv[2]), json.loads(sys.argv[3]))))
    else:
        main(sys.argv[1])
