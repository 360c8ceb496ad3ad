"""Evaluation end to end through the CLI on the built-in MNIST sample: the temperature travels
into the exported files, a worse second model is neither blessed nor pushed, overriding it is
recorded with the reason, and the run report renders in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow

CONFIG = """
run: {{root: {root}}}
data: {{source: builtin, builtin_name: mnist5k}}
preprocessing: {{image_size: [28, 28], channels: 1}}
model: {{name: small_cnn, args: {{width: 16}}}}
train: {{epochs: 3, batch_size: 64, learning_rate: 0.003}}
evaluate:
  thresholds: {{min_accuracy: 0.3}}
  robustness: {{samples: 300}}
export: {{latency: false}}
"""
WORSE = ["--set", "train.epochs=1", "--set", "train.learning_rate=0.0002"]


def _report_path(stdout: str) -> Path:
    return Path(re.search(r"^report: (.+)$", stdout, re.M).group(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluation")
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(root=tmp / "runs"))
    good = visionpipe("run", "--config", str(config))
    worse = visionpipe("run", "--config", str(config), *WORSE)
    # The versions served after the two runs (the module's other tests push more, in any order).
    served = sorted(p.name for p in (tmp / "runs" / "serving" / "visionpipe").iterdir() if p.name.isdigit())
    return tmp / "runs", config, good, worse, served


def _only(root: Path, stage: str, output: str, index: int = 0) -> Path:
    return sorted((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name))[index] / output


def test_the_exported_savedmodel_and_int8_tflite_serve_temperature_scaled_probabilities(runs):
    root, _, good, *_ = runs
    assert good.returncode == 0, good.stdout + good.stderr
    import tensorflow as tf

    from visionpipe.components.common.calibration import with_temperature
    from visionpipe.components.common.dataset import image_dataset
    from visionpipe.components.common.trained_model import load_trained
    from visionpipe.data.records import encoded_images
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    metrics = json.loads((_only(root, "evaluate", "evaluation") / "metrics.json").read_text())
    temperature = metrics["calibration"]["temperature"]
    assert abs(np.log(temperature)) > 0.05, temperature  # far enough from 1 to tell the files apart
    assert metrics["calibration"]["ece_after"] < metrics["calibration"]["ece_before"]

    model, spec, classes = load_trained(_only(root, "train", "model"))
    examples = _only(root, "ingest", "examples")
    images, _ = next(iter(image_dataset(examples, "test", spec, len(classes), batch_size=64)))
    image_bytes, _ = next(iter(encoded_images(examples, "test", batch_size=64)))
    raw = model.predict_on_batch(images)
    calibrated = with_temperature(raw, temperature)

    exported = _only(root, "export", "exported_model")
    serve = tf.saved_model.load(str(exported / "serving" / "visionpipe" / "1")).signatures["serving_default"]
    served = serve(image_bytes=image_bytes)["probabilities"].numpy()
    assert np.allclose(served, calibrated, atol=1e-4)
    assert not np.allclose(served, raw, atol=1e-2)

    int8 = TFLiteClassifier(exported / "tflite" / "model_int8.tflite").predict(images.numpy())
    # Quantised, so not equal: but much nearer the calibrated probabilities than the raw ones.
    assert np.abs(int8 - calibrated).mean() < 0.5 * np.abs(int8 - raw).mean()


def test_a_worse_second_model_is_not_blessed_not_pushed_and_the_report_says_by_how_much(runs):
    root, _, good, worse, served = runs
    assert "gate: BLESSED" in good.stdout
    assert worse.returncode == 1
    rows = stage_rows(worse.stdout)
    assert rows["evaluate"][0] == "succeeded" and rows["export"][0] == "refused" and rows["push"][:2] == ["not", "run"]
    assert served == ["1"]
    blessing = json.loads((_only(root, "evaluate", "blessing", index=-1) / "blessing.json").read_text())
    check = next(c for c in blessing["checks"] if c["name"] == "accuracy vs the served model")
    assert check["outcome"] == "failed" and check["value"] < -0.05
    markdown = _report_path(worse.stdout).with_suffix(".md").read_text()
    assert f"| accuracy vs the served model | {check['value']:.4f} | 0.0000 | failed |" in markdown
    assert "served version 1" in markdown


def test_overriding_the_gate_pushes_and_records_the_reason(runs):
    root, config, *_ = runs
    refused = visionpipe("run", "--config", str(config), *WORSE, "--from", "export", "--override-gate")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    reason = "demo for the product review"
    out = visionpipe("run", "--config", str(config), *WORSE, "--from", "export", "--override-gate", "--reason", reason)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (root / "serving" / "visionpipe" / "2" / "saved_model.pb").is_file()
    # Every failed check is a reason (the worse model may fail default checks too).
    assert re.search(r"gate overridden: the model is not blessed: .*accuracy \S+ vs served version 1", out.stdout)
    with sqlite3.connect(root / "metadata.sqlite") as db:
        summaries = [
            json.loads(s) for (s,) in db.execute("SELECT summary FROM executions WHERE stage='push' ORDER BY id") if s
        ]
        properties = [
            json.loads(p)
            for (p,) in db.execute("SELECT properties FROM artifacts WHERE type='PushedModel' ORDER BY id")
        ]
    assert summaries[-1]["gate_override"]["reason"] == reason
    assert properties[-1]["gate_override"]["reason"] == reason
    assert f"reason given: {reason}" in _report_path(out.stdout).with_suffix(".md").read_text()


def test_the_report_renders_in_headless_chromium_with_every_image_and_table(runs, tmp_path):
    root, config, good, *_ = runs
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "Debian's chromium is not installed (make install puts it in)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    listed = visionpipe("report", "1", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    html = Path(listed.stdout.splitlines()[0])
    assert html == _report_path(good.stdout)
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*browser, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r'<body data-images="(\d+)" data-images-ok="(\d+)"', dom)
    assert body, dom[:500]
    # classes (data), training curves, per class, confusion matrix, reliability, robustness, gallery,
    # and the data-quality thumbnails
    thumbnails = dom.count("width:64px")
    assert int(body.group(1)) == int(body.group(2)) == 7 + thumbnails
    sections = ("gate", "metrics", "data", "data-quality", "calibration", "slices", "robustness", "errors")
    for section in (*sections, "exported-artifacts"):
        assert f'id="{section}"' in dom
    assert dom.count("<table") >= 8
    shot = tmp_path / "report.png"
    subprocess.run([*browser, "--window-size=1280,8000", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.size == (1280, 8000)
        assert len(set(picture.convert("L").resize((64, 400)).getdata())) > 20  # not a blank page
