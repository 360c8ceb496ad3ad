"""Imbalanced single-label data end to end through the CLI (issue 23, item 5): with
``evaluate.prior_correction`` evaluate fits on val how much of the train prior to take out,
judges the corrected decisions, and every exported file serves them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_image
from tests.e2e.helpers import visionpipe

pytestmark = pytest.mark.slow

# Near colours under noise: learnable, but a short training run still leans on the train prior.
SHADES = {"common": (150, 90, 90), "middle": (90, 150, 90), "rare": (90, 90, 150)}
TRAIN = {"common": 120, "middle": 12, "rare": 6}  # 20:1
CONFIG = """
run: {{root: {root}}}
data: {{source: folder, path: {data}}}
preprocessing: {{image_size: [24, 24]}}
model: {{name: small_cnn, args: {{width: 8}}}}
train: {{epochs: 30, batch_size: 16, learning_rate: 0.01}}
evaluate: {{prior_correction: true, prior_strength: 1.0, robustness: {{enabled: false}}, gallery_images: 0}}
data_quality: {{enabled: false}}
export: {{latency: false, tflite_float: false}}
"""


def _imbalanced_folder(root: Path) -> Path:
    for split, counts in (("train", TRAIN), ("val", dict.fromkeys(SHADES, 12)), ("test", dict.fromkeys(SHADES, 12))):
        for c, (name, shade) in enumerate(SHADES.items()):
            for i in range(counts[name]):
                seed = ["train", "val", "test"].index(split) * 10_000 + c * 1000 + i
                make_image(root / split / name / f"{split}_{i:03d}.png", (24, 24), shade, seed, placed=True)
    return root


def _newest(root: Path, stage: str, output: str) -> Path:
    return max((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name)) / output


def test_prior_correction_is_fitted_on_val_judged_and_served_by_every_file(tmp_path):
    data = _imbalanced_folder(tmp_path / "photos")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(root=tmp_path / "runs", data=data))
    run = visionpipe("run", "--config", str(config), "--override-gate", "--reason", "the test checks the files")
    assert run.returncode == 0, run.stdout + run.stderr
    root = tmp_path / "runs"
    metrics = json.loads((_newest(root, "evaluate", "evaluation") / "metrics.json").read_text())
    correction = metrics["prior_correction"]
    print(json.dumps({k: v for k, v in correction.items() if k != "offsets"}))
    assert correction["strength"] == 1.0 and correction["fitted_on"] == "set by evaluate.prior_strength"
    assert set(correction["val_balanced_accuracy"]) == {"uncorrected", "corrected"}
    assert "prior correction: strength 1.0 of the train class prior taken out of the logits" in run.stdout
    # The gate judged the corrected decisions: the rare class is chosen more often than as trained.
    predicted_rare = sum(row[2] for row in metrics["confusion_matrix"])
    assert predicted_rare > correction["without"]["predicted"]["rare"]
    assert metrics["per_class"]["rare"]["recall"] >= correction["without"]["recall"]["rare"]

    import tensorflow as tf

    from visionpipe.components.common.calibration import with_temperature
    from visionpipe.components.common.dataset import image_dataset
    from visionpipe.components.common.trained_model import load_trained
    from visionpipe.data.records import encoded_images
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    model, spec, classes = load_trained(_newest(root, "train", "model"))
    examples = _newest(root, "ingest", "examples")
    images, _ = next(iter(image_dataset(examples, "test", spec, len(classes), batch_size=64)))
    image_bytes, _ = next(iter(encoded_images(examples, "test", batch_size=64)))
    raw = model.predict_on_batch(images)
    corrected = with_temperature(raw, metrics["calibration"]["temperature"], correction["offsets"])
    assert (corrected.argmax(1) != raw.argmax(1)).any()  # decisions the correction changed

    exported = _newest(root, "export", "exported_model")
    serve = tf.saved_model.load(str(exported / "serving" / "visionpipe" / "1")).signatures["serving_default"]
    np.testing.assert_allclose(serve(image_bytes=image_bytes)["probabilities"].numpy(), corrected, atol=1e-5)
    int8 = TFLiteClassifier(exported / "tflite" / "model_int8.tflite").predict(images.numpy())
    assert np.abs(int8 - corrected).mean() < 0.5 * np.abs(int8 - raw).mean()
    report = Path(next(line[8:] for line in run.stdout.splitlines() if line.startswith("report: ")))
    assert "prior correction strength" in report.read_text()
