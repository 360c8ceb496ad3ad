"""Degenerate models and data through the CLI, with the default gate: a model that answers one
class, labels that carry no signal, a class too small to learn, every class holding the same
photos. Each ends NOT BLESSED, INCONCLUSIVE or blocked, with the reason, and nothing is served."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import COLORS, make_folder, make_image, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow


def served_versions(root: Path) -> list[str]:
    model = root / "serving" / "visionpipe"
    return sorted(p.name for p in model.iterdir() if p.name.isdigit()) if model.is_dir() else []


def one_class_weights(path: Path, answer: int) -> Path:
    """A small_cnn weights file whose head ignores the image: zero weights, and a bias that
    makes class ``answer`` win for every input."""
    from visionpipe.models.classifier import build_classifier, network_of, preprocessing_spec
    from visionpipe.models.config import ModelConfig, PreprocessingConfig

    spec = preprocessing_spec(PreprocessingConfig(image_size=(32, 32), channels=3, resize_policy="pad"), None, None)
    classifier = build_classifier(spec, 3, ModelConfig(name="small_cnn", args={"width": 8}))
    head = network_of(classifier).get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.where(np.arange(len(bias)) == answer, 10.0, 0.0)])
    classifier.save_weights(path)
    return path


def test_a_model_that_answers_one_class_is_not_blessed_and_not_pushed(tmp_path):
    data = make_folder(tmp_path / "images", per_class=30)  # 90 images: a test split of 21 (7 a class)
    weights = one_class_weights(tmp_path / "one_class.weights.h5", answer=0)  # "blue", first of the tie
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data, defaults=True))
    out = visionpipe(
        "run", "--config", str(config), "--set", f"model.weights={weights}", "--set", "train.learning_rate=0"
    )
    assert out.returncode == 1, out.stdout + out.stderr
    rows = stage_rows(out.stdout)
    assert rows["evaluate"][0] == "succeeded" and rows["export"][0] == "refused" and rows["push"][:2] == ["not", "run"]
    assert "gate: NOT BLESSED: accuracy 0.3333 is no better than always answering 'blue'" in out.stdout
    assert "baselines on the test split: always answering 'blue' (the most frequent train class) 0.3333," in out.stdout
    assert "the model never recognises 2 class(es) with enough images: green (0 of 7), red (0 of 7)" in out.stdout
    markdown = Path(re.search(r"^report: (.+)$", out.stdout, re.M).group(1)).with_suffix(".md").read_text()
    assert "**Gate: NOT BLESSED**: accuracy 0.3333 is no better than always answering 'blue'" in markdown
    assert "| always answering 'blue' | 0.3333 |" in markdown and "| chance (1/3) | 0.3333 |" in markdown
    assert "| accuracy | 0.3333 | not set | not set |" in markdown
    assert served_versions(tmp_path / "runs") == []


def test_labels_that_carry_no_signal_are_not_blessed(tmp_path):
    # 260 photos, half red and half blue, filed at random under two classes (130 each): the
    # default test split holds 60 (30 a class), for a 95% interval about 0.25 wide.
    order = np.random.default_rng(0).permutation(260)
    for i, j in enumerate(order):
        name, color = ("red", COLORS["red"]) if i % 2 else ("blue", COLORS["blue"])
        make_image(tmp_path / "images" / ("cat" if j < 130 else "dog") / f"{name}_{i:03d}.png", (32, 32), color, i)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", tmp_path / "images", defaults=True))
    out = visionpipe("run", "--config", str(config), "--set", "evaluate.robustness.enabled=false")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "test 60 assigned by visionpipe" in out.stdout
    root = tmp_path / "runs"
    evaluation = max((root / "artifacts" / "evaluate").iterdir(), key=lambda p: int(p.name))
    blessing = json.loads((evaluation / "blessing" / "blessing.json").read_text())
    assert blessing["verdict"] in ("NOT BLESSED", "INCONCLUSIVE")
    majority = next(c for c in blessing["checks"] if c["name"] == "accuracy vs always answering the majority class")
    assert majority["outcome"] in ("failed", "inconclusive") and majority["threshold"] == 0.5
    assert stage_rows(out.stdout)["export"][0] == "refused" and served_versions(root) == []


def test_a_class_too_small_to_learn_blocks_at_validate_naming_it(tmp_path):
    data = make_folder(tmp_path / "images", per_class=30)
    for path in sorted((data / "green").iterdir())[8:]:
        path.unlink()  # green keeps 8 images
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data, defaults=True))
    out = visionpipe("run", "--config", str(config))
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert stage_rows(out.stdout)["train"][0] == "refused"
    assert re.search(
        r"BLOCKING too_few_images: 1 \(green: \d train images \(8 in all\); add about \d+ more\)", out.stdout
    )
    assert served_versions(tmp_path / "runs") == []


def test_every_class_holding_the_same_photos_gets_a_clear_error(tmp_path):
    data = make_folder(tmp_path / "images", per_class=12)
    for name in ("green", "blue"):
        shutil.rmtree(data / name)
        shutil.copytree(data / "red", data / name)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data, defaults=True))
    out = visionpipe("run", "--config", str(config))
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert stage_rows(out.stdout)["ingest"][0] == "failed"
    assert "none of the 36 images can be used: all were quarantined" in out.stderr
    assert "the same image is filed under blue and green and red" in out.stderr
    assert served_versions(tmp_path / "runs") == []


def test_data_too_small_for_a_test_split_is_scored_on_val_inconclusive_until_overridden(tmp_path):
    from tests.e2e.test_first_hour import make_layout

    data = make_layout(tmp_path / "photos", {"train": 30, "val": 5})  # two classes: a test split would hold 14
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data, defaults=True))
    out = visionpipe("run", "--config", str(config))
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        "test 0 not made: the data is too small for a useful test split, so evaluate scores val (it would hold "
        "14 images, fewer than data.split.min_test_size 20)" in out.stdout
    )
    assert "train 60 as given" in out.stdout
    assert re.search(r"evaluate: val accuracy \S+ \(95% CI \S+, width \d\.\d{4}\).* on 10 images", out.stdout)
    assert "scored on val (the data is too small for a separate test split; see the ingest summary)" in out.stdout
    assert "gate: INCONCLUSIVE" in out.stdout or "gate: NOT BLESSED" in out.stdout
    assert stage_rows(out.stdout)["export"][0] == "refused" and served_versions(tmp_path / "runs") == []

    reason = "a pilot on 70 photos, judged by eye"
    shipped = visionpipe("run", "--config", str(config), "--from", "export", "--override-gate", "--reason", reason)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert served_versions(tmp_path / "runs") == ["1"] and f"(reason: {reason})" in shipped.stdout
