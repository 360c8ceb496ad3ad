"""Training in mixed bfloat16 on this CPU (bfloat16 is emulated where the CPU lacks it): the
model trains, and what is kept and exported is float32, scoring like the trained model. The
model is a narrow airbench: its whitening, fused BatchNormalization and GELU layers train in
bfloat16 and are saved as float32 layers."""

from __future__ import annotations

import json

import keras
import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe
from visionpipe.models.layers import custom_layers

pytestmark = pytest.mark.slow


def test_mixed_bfloat16_trains_and_exports_float32(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", make_folder(tmp_path / "images", per_class=16)))
    settings = ["--set", "train.mixed_precision=mixed_bfloat16", "--set", "export.tflite_int8=false",
                "--set", "model.name=airbench", "--set", "model.args={widths: [8, 16, 16]}"]  # fmt: skip
    done = visionpipe("run", "--config", str(config), *settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(row[0] == "succeeded" for row in stage_rows(done.stdout).values()), done.stdout

    artifacts = tmp_path / "runs" / "artifacts"
    (model_dir,) = (artifacts / "train").glob("*/model")
    assert json.loads((model_dir / "params.json").read_text())["train"]["mixed_precision"] == "mixed_bfloat16"
    history = json.loads((model_dir / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]  # it learned
    custom_layers(keras)  # registers airbench's layers for load_model
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    assert {w.dtype for w in model.weights} == {"float32"}
    (exported,) = (artifacts / "export").glob("*/exported_model/artifacts.json")
    scores = json.loads(exported.read_text())
    assert scores["saved_model"]["accuracy"] == pytest.approx(scores["keras"]["accuracy"], abs=1e-6)
    assert scores["tflite_float"]["accuracy"] == pytest.approx(scores["keras"]["accuracy"], abs=0.05)
