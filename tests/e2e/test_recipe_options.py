"""The CIFAR recipe options of issue 24 through the whole pipeline: Muon (``train.optimizer:
muon``) and airbench's alternating flips (``flip_alternating``) build, train and export a
narrow airbench, and the exported SavedModel scores as the trained model does."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow


def test_muon_with_alternating_flips_trains_and_exports(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", make_folder(tmp_path / "images", per_class=16)))
    settings = ["--set", "train.optimizer=muon", "--set", "train.augment.policy=[flip_alternating, translate]",
                "--set", "export.tflite_int8=false",
                "--set", "model.name=airbench", "--set", "model.args={widths: [8, 16, 16]}"]  # fmt: skip
    done = visionpipe("run", "--config", str(config), *settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(row[0] == "succeeded" for row in stage_rows(done.stdout).values()), done.stdout
    assert "augmentation: flip_alternating, translate" in done.stdout

    artifacts = tmp_path / "runs" / "artifacts"
    (model_dir,) = (artifacts / "train").glob("*/model")
    train = json.loads((model_dir / "params.json").read_text())["train"]
    assert train["optimizer"] == "muon" and train["augment"]["policy"][0]["op"] == "flip_alternating"
    history = json.loads((model_dir / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]  # it learned
    (exported,) = (artifacts / "export").glob("*/exported_model/artifacts.json")
    scores = json.loads(exported.read_text())
    assert scores["saved_model"]["accuracy"] == pytest.approx(scores["keras"]["accuracy"], abs=1e-6)
