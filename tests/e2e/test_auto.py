"""The zero-config start: ``visionpipe run --data DIR`` with recipe auto, run as a user would from
a fresh working directory; an explicit ``--set`` wins; a pretrained backbone from Keras' cache.

Every run here has no way to download anything: KERAS_HOME is a temporary folder and the
proxies point at a closed port, so a test can never fetch weights, whatever the machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import COLORS, make_image
from tests.e2e.helpers import stage_rows
from visionpipe.components.common.trained_model import load_trained
from visionpipe.components.train.finetune import find_backbone

pytestmark = pytest.mark.slow

BUDGET = "train.time_budget_minutes=0.25"  # enough for a few epochs of these tiny sets
# The first run must end BLESSED: auto fits its epochs to the budget by timing steps, so on a
# loaded or slower CPU 15 s bought one epoch (clone 8, AVX2 host, cores shared: 1.0 s a step)
# and the model never recognised green. A minute buys several epochs even then.
BLESSED_BUDGET = "train.time_budget_minutes=1"


def make_photos(root: Path, per_class: int = 40) -> Path:
    """Three classes of small photo-sized images (56-90 px, above auto's photo threshold), enough
    for a test split the gate can judge, each a different picture (no near-duplicates to block
    the run)."""
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(per_class):
            make_image(
                root / name / f"img_{i:03d}.jpg",
                (64 + (i * 7) % 27, 56 + (i * 5) % 23),
                color,
                seed=c * 100 + i,
                placed=True,
            )
    return root


def offline_env(keras_home: Path) -> dict[str, str]:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, so every request fails at once
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "keras_home")}
    return {**env, "KERAS_HOME": str(keras_home), "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "https_proxy": closed}


def visionpipe_in(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """The CLI from ``cwd``: where a user starts it, and where runs go by default."""
    return subprocess.run(
        [sys.executable, "-m", "visionpipe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def trained_params(root: Path) -> dict:
    latest = max((root / "artifacts" / "train").iterdir(), key=lambda p: int(p.name))
    return json.loads((latest / "model" / "params.json").read_text())


def test_run_with_only_a_folder_chooses_a_recipe_estimates_it_and_ends_with_the_report(tmp_path):
    data = make_photos(tmp_path / "my_photos")
    work = tmp_path / "work"
    work.mkdir()
    env = offline_env(tmp_path / "keras_home")
    out = visionpipe_in(work, env, "run", "--data", str(data), "--set", BLESSED_BUDGET)
    assert out.returncode == 0, out.stdout + out.stderr
    root = work / "visionpipe_runs" / "my_photos"
    lines = out.stdout.splitlines()
    assert lines[0] == f"run root: {root} (--data's default; set run.root to move it); recipe auto"
    assert all(status in ("succeeded",) for status, *_ in stage_rows(out.stdout).values())
    # The choice, with why there is no pretrained backbone (one line), before training starts.
    assert re.search(
        r"auto recipe for \d+ train / \d+ val images, 3 classes, colour photos of about \d+x\d+", out.stdout
    )
    offline = [line for line in lines if "no pretrained backbone" in line]
    assert len(offline) == 1 and "cannot be downloaded" in offline[0] and "training from scratch" in offline[0]
    chose = next(
        i for i, line in enumerate(lines) if re.search(r"auto chose: \d+x\d+ \(crop, 3 channels\), resnet9", line)
    )
    estimate = next(i for i, line in enumerate(lines) if "estimated training time" in line)
    first_epoch = next(i for i, line in enumerate(lines) if re.search(r"train\s+epoch 1/", line))
    assert chose < estimate < first_epoch
    # The summary checks the estimate against the time training took; the report comes last.
    assert re.search(
        r"train: auto: estimated [\d.]+ (s|min) for \d+ epochs.*training took .*x the estimate", out.stdout
    )
    assert lines[-1] == f"report: {root / 'runs' / '1' / 'report.html'}" and (root / "runs/1/report.html").is_file()
    params = trained_params(root)
    assert params["recipe"] == "auto" and params["model"]["name"] == "resnet9"
    assert params["train"]["ema_epochs"] == 0.0 and params["train"]["batch_size"] == 16

    # The augmentation preview shows auto's policy for this data.
    preview = visionpipe_in(work, env, "augment-preview", "--data", str(data), "--out", "grid.png")
    assert preview.returncode == 0 and (work / "grid.png").is_file(), preview.stdout + preview.stderr

    # An explicit --set wins over auto's choice of that key; auto still chooses the rest.
    again = visionpipe_in(
        work, env, "run", "--data", str(data), "--stage", "train", "--set", BUDGET, "--set", "train.epochs=2",
        "--set", "preprocessing.image_size=[40, 40]", "--set", "model.args.width=8",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept as you set them: preprocessing.image_size, model.args, train.epochs" in again.stdout
    assert "2 epochs of" in again.stdout and "(as you set train.epochs)" in again.stdout
    params = trained_params(root)
    assert params["train"]["epochs"] == 2 and params["preprocessing"]["image_size"] == [40, 40]
    assert params["model"] == {"name": "resnet9", "args": {"width": 8}, "weights": "none"}
    assert params["preprocessing"]["resize_policy"] == "crop" and params["train"]["label_smoothing"] == 0.1


def fake_imagenet_weights(keras_home: Path, size: int, alpha: float) -> Path:
    """A MobileNetV2 backbone file where Keras' cache keeps the ImageNet one, with seeded random
    weights (the real file cannot be downloaded here)."""
    keras.utils.set_random_seed(3)
    backbone = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=None)
    for layer in backbone.layers:  # distinctive BatchNorm statistics, to recognise them afterwards
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(0).uniform(-1, 1, layer.moving_mean.shape))
    path = keras_home / "models" / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5"
    path.parent.mkdir(parents=True)
    backbone.save(path)  # the legacy HDF5 layout Keras' own files have
    return path


def test_auto_prefers_a_pretrained_backbone_from_keras_cache_for_few_photos(tmp_path):
    weights = fake_imagenet_weights(tmp_path / "keras_home", 96, 0.35)
    data = make_photos(tmp_path / "photos")
    out = visionpipe_in(
        tmp_path, offline_env(tmp_path / "keras_home"), "run", "--data", str(data), "--stage", "ingest",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    common = ["--data", str(data), "--set", BUDGET, "--set", "preprocessing.image_size=[96, 96]"]
    common += ["--set", "model.args.alpha=0.35", "--set", "train.finetune.head_epochs=1"]
    env = offline_env(tmp_path / "keras_home")
    assert visionpipe_in(tmp_path, env, "run", *common, "--stage", "validate").returncode == 0
    out = visionpipe_in(tmp_path, env, "run", *common, "--stage", "train")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"pretrained mobilenet_v2 (ImageNet weights in Keras' cache: {weights})" in out.stdout
    assert "imagenet weights, head first for 1 epochs" in out.stdout
    assert "phase 1: 1 epochs training the head on the frozen backbone" in out.stdout
    root = tmp_path / "visionpipe_runs" / "photos"
    params = trained_params(root)
    assert params["model"]["name"] == "mobilenet_v2" and params["model"]["weights"] == "imagenet"
    # The backbone came from the cached file: its frozen BatchNorm statistics are the file's.
    latest = max((root / "artifacts" / "train").iterdir(), key=lambda p: int(p.name))
    model, _, _ = load_trained(latest / "model")
    means = [w for w in find_backbone(model).weights if "moving_mean" in w.path]
    expected = np.random.default_rng(0).uniform(-1, 1, means[0].shape)
    np.testing.assert_allclose(np.array(means[0]), expected, rtol=1e-6)
