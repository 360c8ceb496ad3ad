"""Training with augmentation in the model, class balancing and a file cache, and the preview
command, through the CLI on a generated image folder."""

from __future__ import annotations

import keras
import pytest
from PIL import Image

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe
from visionpipe.components.common.dataset import FILE_CACHE_DONE

pytestmark = pytest.mark.slow
POLICY = "train.augment.policy=[flip_horizontal, {op: rand_augment, probability: 0.5}, {op: mixup, magnitude: 0.4}]"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("augment")
    config = tmp / "config.yaml"
    config.write_text(tiny_config_yaml(tmp / "runs", make_folder(tmp / "images")))
    # Before anything is ingested (the tests below run in any order, all after it).
    missing = visionpipe("augment-preview", "--config", str(config), "--set", POLICY)
    for stage in ("ingest", "validate"):
        assert visionpipe("run", "--config", str(config), "--stage", stage).returncode == 0
    return tmp, config, missing


def test_preview_needs_ingested_data_and_a_policy(project):
    _, config, missing = project
    assert missing.returncode == 2 and "no ingested data under" in missing.stderr
    empty = visionpipe("augment-preview", "--config", str(config))
    assert empty.returncode == 2 and "train.augment.policy is empty" in empty.stderr


def test_preview_writes_a_grid_of_augmented_samples(project):
    tmp, config, _ = project
    out = tmp / "preview.png"
    done = visionpipe(
        "augment-preview",
        "--config",
        str(config),
        "--set",
        POLICY,
        "--out",
        str(out),
        "--images",
        "3",
        "--variants",
        "4",
    )
    assert done.returncode == 0, done.stderr
    width, height = Image.open(out).size
    assert width > height > 300  # 5 columns of 3 rows


def test_train_with_augmentation_in_the_model_class_weights_and_a_file_cache(project):
    tmp, config, _ = project
    done = visionpipe(
        "run",
        "--config",
        str(config),
        "--stage",
        "train",
        "--set",
        POLICY,
        "--set",
        "train.augment.placement=model",
        "--set",
        "train.class_balance=weights",
        "--set",
        "input.cache=file",
        "--set",
        "train.verbose=0",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cache file:" in done.stdout and "placement model" in done.stdout
    model_dir = max((tmp / "runs" / "artifacts" / "train").iterdir(), key=lambda p: int(p.name)) / "model"
    saved = keras.models.load_model(model_dir / "model.keras")
    assert saved.name == "small_cnn_classifier"  # the augmentation wrapper is not saved
    assert not [layer for layer in saved.layers if "augment" in layer.name]
    assert list((tmp / "runs" / "cache").glob(f"tfdata-*-train/{FILE_CACHE_DONE}"))  # written whole


def test_train_with_a_resampled_stream(project):
    _, config, _ = project
    done = visionpipe(
        "run",
        "--config",
        str(config),
        "--stage",
        "train",
        "--set",
        "train.class_balance=resample",
        "--set",
        "train.augment.policy=[cutmix]",
        "--set",
        "input.deterministic=true",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert stage_rows(done.stdout)["train"][0] == "succeeded"
