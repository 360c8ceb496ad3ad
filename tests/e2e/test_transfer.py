"""Transfer learning with a weights file the test makes itself (no download): phase 1 trains
the head on a frozen backbone, phase 2 fine-tunes it; ImageNet weights offline fail fast."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import visionpipe
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.train.finetune import find_backbone
from visionpipe.models.classifier import build_classifier, load_weights_file
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.errors import UserError

SPEC = PreprocessingSpec(32, 32, 3, "pad", (0.5,) * 3, (0.25,) * 3)
MODEL = ModelConfig(name="mobilenet_v3_small", args={"alpha": 0.75})


def test_imagenet_weights_offline_fail_within_seconds_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        build_classifier(SPEC, 3, ModelConfig(name="mobilenet_v3_small", weights="imagenet"))
    assert time.monotonic() - started < 20
    message = str(error.value)
    assert "weights_mobilenet_v3_small" in message and str(tmp_path / "keras_home" / "models") in message
    assert "https://storage.googleapis.com/" in message


def backbone_weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in find_backbone(model).weights]


@pytest.mark.slow
def test_two_phases_from_a_weights_file(tmp_path):
    # A "pretrained" classifier for 5 other classes: its head cannot fit ours and is skipped.
    keras.utils.set_random_seed(7)
    source = build_classifier(SPEC, 5, MODEL)
    weights_file = tmp_path / "pretrained.weights.h5"
    source.save_weights(weights_file)
    reference = build_classifier(SPEC, 3, MODEL)
    changed, total = load_weights_file(reference, weights_file)
    assert 0 < changed < total  # the backbone loaded, the new head did not
    expected = backbone_weights(reference)

    data = make_folder(tmp_path / "images")
    config = tmp_path / "config.yaml"
    config.write_text(
        tiny_config_yaml(tmp_path / "runs", data).replace(
            "  name: small_cnn\n  args: {width: 8}",
            f"  name: mobilenet_v3_small\n  args: {{alpha: 0.75}}\n  weights: {weights_file}",
        )
    )
    common = ["--set", "train.epochs=1", "--set", "train.finetune.head_epochs=1"]
    out = visionpipe("run", "--config", str(config), "--stage", "ingest")
    out = visionpipe("run", "--config", str(config), "--stage", "validate")
    assert out.returncode == 0, out.stderr

    frozen = visionpipe(
        "run", "--config", str(config), "--stage", "train", *common, "--set", "train.finetune.unfreeze=0"
    )
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    assert "phase 1: 1 epochs training the head on the frozen backbone" in frozen.stdout
    assert "phase 2: 1 epochs fine-tuning 0 backbone layers" in frozen.stdout
    head_only, _, _ = load_trained(latest_model(tmp_path / "runs"))
    for got, want in zip(backbone_weights(head_only), expected, strict=True):
        np.testing.assert_array_equal(got, want)  # phase 1 (and a phase 2 that trains nothing) kept it

    tuned = visionpipe("run", "--config", str(config), "--stage", "train", *common)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    fine_tuned, _, _ = load_trained(latest_model(tmp_path / "runs"))
    backbone = find_backbone(fine_tuned)
    moved = [not np.array_equal(np.array(w), e) for w, e in zip(backbone.weights, expected, strict=True)]
    assert any(moved)  # phase 2 changed the backbone ...
    for weight, was_moved in zip(backbone.weights, moved, strict=True):
        if "moving_" in weight.path:
            assert not was_moved  # ... but BatchNorm statistics stay frozen


def latest_model(root: Path) -> Path:
    return max((root / "artifacts" / "train").iterdir(), key=lambda p: int(p.name)) / "model"
