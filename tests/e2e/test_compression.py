"""Pruning and QAT of a Keras 3 model through the tfmot bridge, in the export stage: the
sparsity survives into the int8 file, and legacy Keras never reaches the main process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import visionpipe as visionpipe_api
from tests.conftest import COLORS, make_folder, tiny_config_yaml
from visionpipe.components.export.measure import tflite_sparsity
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.checks import Check, Outcome

pytestmark = pytest.mark.slow

COMPRESSION = [
    "model.args={width: 32}",
    "export.compression.prune.enabled=true",
    "export.compression.prune.min_weights=0",
    "export.compression.prune.frequency=5",
    "export.compression.qat=true",
    "export.compression.preserve_sparsity=false",
    "export.compression.epochs=2",
    "export.compression.steps_per_epoch=20",
    # Smoothed labels keep the raw model under-confident (about 0.8 at most), so the temperature
    # evaluate fits sharpens it far beyond what int8 rounding could change (checked below).
    "train.label_smoothing=0.3",
]


def test_prune_and_qat_files_are_made_scored_and_sparse_and_the_process_stays_on_keras_3(tmp_path):
    data = make_folder(tmp_path / "images", per_class=20)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    result = visionpipe_api.run_pipeline(visionpipe_api.load_config(config, COMPRESSION))  # in this process
    assert result.ok, result.failure()
    assert "TF_USE_LEGACY_KERAS" not in os.environ and "tensorflow_model_optimization" not in sys.modules
    export = max((tmp_path / "runs" / "artifacts" / "export").iterdir(), key=lambda p: int(p.name))
    tflite = export / "exported_model" / "tflite"
    results = json.loads((export / "exported_model" / "artifacts.json").read_text())
    assert {"tflite_prune_int8", "tflite_qat_int8"} <= set(results)
    pruned = tflite_sparsity(tflite / "model_pruned_int8.tflite")
    # The first convolution stays dense (432 of about 140,000 weights here).
    assert pruned == pytest.approx(0.75, abs=0.01)
    assert results["tflite_prune_int8"]["sparsity"] == pytest.approx(pruned, abs=1e-4)
    assert tflite_sparsity(tflite / "model_int8.tflite") < 0.05
    assert results["tflite_prune_int8"]["gzip_bytes"] < 0.6 * results["tflite_int8"]["gzip_bytes"]
    assert all(0 <= r["accuracy"] <= 1 for r in results.values())
    # The bridge's files carry evaluate's temperature like export's own: here the model is
    # under-confident (T << 1), so every served file is far more confident than the raw model.
    import numpy as np
    import tensorflow as tf

    from visionpipe.components.common.trained_model import load_trained
    from visionpipe.models.preprocessing import load_image
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    assert result.outputs("evaluate")["evaluation"].temperature < 0.5
    model, spec, _ = load_trained(result.outputs("train")["model"].path)
    # The user's own images: on random noise, a model pruned and fine-tuned for two epochs may be
    # as unsure as the raw model or surer than the served one, temperature or not.
    files = [f for name in COLORS for f in sorted((data / name).iterdir())[:4]]
    images = np.stack([load_image(tf.io.read_file(str(f)), spec).numpy() for f in files])
    raw = model.predict(images, verbose=0).max(axis=1).mean()
    served = TFLiteClassifier(tflite / "model_float.tflite").predict(images).max(axis=1).mean()
    for name in ("model_pruned_int8.tflite", "model_qat_int8.tflite"):
        confidence = TFLiteClassifier(tflite / name).predict(images).max(axis=1).mean()
        assert abs(confidence - served) < abs(confidence - raw), (name, confidence, served, raw)


def test_every_file_kind_is_made_measured_and_flex_free(tmp_path):
    data = make_folder(tmp_path / "images", per_class=20)  # 10 gave the gate too few test images
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    kinds = ["export.tflite_float16=true", "export.tflite_dynamic_int8=true", "export.onnx=true",
             "export.compression.distill.student=small_cnn", "export.compression.distill.student_args={width: 4}",
             "export.compression.distill.epochs=2", "export.compression.channels.fraction=0.5",
             "export.compression.channels.epochs=1", "export.max_accuracy_drop=1.0"]  # fmt: skip
    result = visionpipe_api.run_pipeline(visionpipe_api.load_config(config, kinds))
    assert result.ok, result.failure()
    rows = json.loads((result.outputs("export")["exported_model"].path / "artifacts.json").read_text())
    assert set(rows) == {"keras", "saved_model", "tflite_float", "tflite_float16", "tflite_dynamic_int8",
                         "tflite_int8", "tflite_channels_int8", "tflite_student_int8", "onnx"}  # fmt: skip
    for name in ("tflite_float", "tflite_float16", "tflite_dynamic_int8", "tflite_int8", "tflite_channels_int8",
                 "tflite_student_int8", "onnx"):  # fmt: skip
        row = rows[name]
        assert row["p50_ms_1t"] > 0 and row["p95_ms_4t"] >= row["p50_ms_4t"] and row["gzip_bytes"] > 0
        assert Check.from_dict(row["gate"]).outcome is Outcome.PASSED, (name, row)
    # ONNX gives the Keras model's predictions, at evaluate's temperature, in onnxruntime.
    import numpy as np

    from visionpipe.components.common.calibration import with_temperature
    from visionpipe.components.common.trained_model import load_trained
    from visionpipe.components.export.onnx_model import OnnxClassifier

    model, _, _ = load_trained(result.outputs("train")["model"].path)
    temperature = result.outputs("evaluate")["evaluation"].temperature
    images = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    onnx = OnnxClassifier(result.outputs("export")["exported_model"].path / "model.onnx")
    expected = with_temperature(model.predict(images, verbose=0), temperature)
    np.testing.assert_allclose(onnx.predict(images), expected, atol=1e-4)
    sizes = {name: rows[name]["size_bytes"] for name in rows if name.startswith("tflite")}
    assert sizes["tflite_int8"] < sizes["tflite_float16"] < sizes["tflite_float"]
    assert sizes["tflite_dynamic_int8"] < sizes["tflite_float16"]
    assert sizes["tflite_student_int8"] < sizes["tflite_int8"]  # a quarter of the width
    assert sizes["tflite_channels_int8"] < sizes["tflite_int8"]  # half the filters of every convolution


def test_metadata_loads_in_tflite_support_and_the_task_library_agrees_with_the_interpreter(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.conftest import COLORS, make_image
    from visionpipe.components.export.tflite_metadata import classify, metadata_python, show
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    python = metadata_python("auto")
    assert python is not None, "make install sets up .venv-tflite-support"
    data = make_folder(tmp_path / "images", per_class=20)  # 10 gave the gate too few test images
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    result = visionpipe_api.run_pipeline(visionpipe_api.load_config(config, ["export.tflite_float=false"]))
    assert result.ok, result.failure()
    exported = result.outputs("export")["exported_model"].path
    model = exported / "tflite" / "model_int8.tflite"
    rows = json.loads((exported / ExportedModel.TABLE).read_text())
    assert rows["tflite_int8"]["task_library"] == "yes" and "task_library" not in rows["saved_model"]
    shown = show(python, model)
    assert shown["files"] == ["labels.txt"] and shown["labels"] == ["blue", "green", "red"]
    # Images at the model's size, so the Task Library's own resizing does not come into it.
    images = []
    for i, (name, color) in enumerate(COLORS.items()):
        images.append(tmp_path / f"{name}.png")
        make_image(images[-1], (32, 32), color, seed=900 + i)
    task = classify(python, model, images)
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0 for p in images])
    probabilities = TFLiteClassifier(model).predict(pixels)
    for row, probs in zip(task, probabilities, strict=True):
        # The same top-1 (a tie may be broken either way) with the same score.
        assert probs[["blue", "green", "red"].index(row["label"])] == pytest.approx(probs.max(), abs=1e-6)
        assert row["score"] == pytest.approx(probs.max(), abs=1e-6)


def test_a_failed_bridge_file_is_recorded_and_kept_out_of_push_while_the_rest_of_the_export_stands(tmp_path):
    """The bridge stopped at its timeout (1 s: it cannot even import TensorFlow) used to fail
    the export stage and delete the SavedModel and every file converted before it."""
    data = make_folder(tmp_path / "images", per_class=20)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    overrides = ["export.compression.prune.enabled=true", "export.compression.timeout_seconds=1"]
    result = visionpipe_api.run_pipeline(visionpipe_api.load_config(config, overrides))
    assert result.ok, result.failure()
    exported = result.outputs("export")["exported_model"].path
    rows = json.loads((exported / "artifacts.json").read_text())
    not_made = Check.from_dict(rows["tflite_prune_int8"]["gate"])
    assert not_made.outcome is Outcome.FAILED and str(not_made).startswith(
        "failed: not made: prune did not finish within"
    )
    assert (
        Check.from_dict(rows["tflite_int8"]["gate"]).outcome is Outcome.PASSED
        and (exported / "tflite" / "model_int8.tflite").is_file()
    )
    assert (exported / "serving").is_dir() and not (exported / "tflite" / "model_pruned_int8.tflite").exists()
    pushed = result.outputs("push")["pushed_model"].properties
    assert Check.from_dict(pushed["not_pushed"]["tflite_prune_int8"]) == not_made
    assert sorted(p.name for p in Path(pushed["tflite"]).glob("*.tflite")) == [
        "model_float.tflite",
        "model_int8.tflite",
    ]
