"""Issue 22's acceptance: through the CLI, on a small pre-split folder with planted label errors
and a planted resized copy across splits, the data_quality stage's findings file and the run
report list them, and the findings file as data.exclude drops them on the next run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import COLORS, make_image, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow
COUNTS = {"train": 16, "val": 3, "test": 4}  # images per class and split


def make_photo(path: Path, size: tuple[int, int], color: tuple[int, int, int], seed: int) -> None:
    """A class-coloured image (``make_image``) with a gray bar of its own size and place, so no two
    images are alike but for pixel noise (global pooling averages noise away)."""
    make_image(path, size, color, seed)
    rng = np.random.default_rng(seed)
    with Image.open(path) as image:
        pixels = np.array(image)
    h, w = pixels.shape[:2]
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    pixels[top : top + rng.integers(3, h // 2), left : left + rng.integers(3, w // 2)] = rng.integers(0, 256)
    Image.fromarray(pixels).save(path)


def planted_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """train/val/test of three coloured classes, with planted faults: what -> the file's path."""
    for c, (name, color) in enumerate(COLORS.items()):
        for s, (split, count) in enumerate(COUNTS.items()):
            for i in range(count):
                size = (24 + (i * 7) % 17, 24 + (i * 11) % 17)
                make_photo(root / split / name / f"{split}_{i:03d}.png", size, color, seed=10_000 * s + 100 * c + i)
    planted = {
        # Green photos filed under red, in train and in test.
        "wrong_train_1": root / "train" / "red" / "green_a.png",
        "wrong_train_2": root / "train" / "red" / "green_b.png",
        "wrong_test": root / "test" / "blue" / "green_c.png",
    }
    for n, path in enumerate(planted.values()):
        make_photo(path, (32, 32), COLORS["green"], seed=90_000 + n)
    # A train photo again in test, at twice its size, and another in val recompressed as JPEG
    # (their bytes differ: ingest keeps both): 2 of the 24 val/test images, above the 5% that
    # makes leakage a blocking anomaly.
    original, copy = root / "train" / "blue" / "train_005.png", root / "test" / "blue" / "enlarged_copy.png"
    with Image.open(original) as image:
        image.resize((image.width * 2, image.height * 2), Image.BILINEAR).save(copy)
    original_2, copy_2 = root / "train" / "red" / "train_007.png", root / "val" / "red" / "recompressed_copy.jpg"
    with Image.open(original_2) as image:
        image.save(copy_2, quality=60)
    planted |= {"original": original, "copy": copy, "original_2": original_2, "copy_2": copy_2}
    return root, {k: str(v) for k, v in planted.items()}


def test_planted_label_errors_and_leakage_are_in_the_findings_and_the_report(tmp_path):
    data, planted = planted_folder(tmp_path / "images")
    config = tmp_path / "config.yaml"
    # export last in the tiny config: no TFLite files to make (this test is about the data)
    config.write_text(tiny_config_yaml(tmp_path / "runs", data) + "  tflite_float: false\n  tflite_int8: false\n")
    result = visionpipe("run", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr  # the leakage anomaly refuses export
    assert stage_rows(result.stdout)["data_quality"][0] == "succeeded"
    assert "data quality: " in result.stdout and "near-duplicate pairs across splits" in result.stdout
    assert "stage export refused: the data_quality stage found blocking anomalies: 2 of the 24 val/test images" in (
        result.stderr
    ), result.stderr

    artifact = next((tmp_path / "runs" / "artifacts" / "data_quality").iterdir()) / "data_quality"
    record = json.loads((artifact / "findings.json").read_text())
    with (artifact / "findings.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(record["findings"])
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)

    leaks = by_kind.get("near_duplicate_leakage", [])
    pairs = {(planted["original"], planted["copy"]), (planted["original_2"], planted["copy_2"])}
    # Exactly the planted copies: the tiny CNN's embeddings barely tell same-size images of one
    # colour apart, but their pixels do.
    assert {(r["path"], r["other_path"]) for r in leaks} == pairs, leaks
    assert all(float(r["pixel_correlation"]) >= 0.98 for r in leaks)
    label_issues = {r["path"]: r for r in by_kind.get("label_issue", [])}
    for key in ("wrong_train_1", "wrong_train_2", "wrong_test"):
        assert planted[key] in label_issues, (key, rows)
        assert label_issues[planted[key]]["suggested_label"] == "green"
    assert label_issues[planted["wrong_test"]]["checked_by"] == "the trained model"
    assert label_issues[planted["wrong_train_1"]]["checked_by"].startswith("cross-validated logistic regression")
    assert len(label_issues) <= 5  # the planted three, and at most two borderline images of 73
    summary = record["summary"]
    assert summary["counts"]["label_issue"] == len(label_issues) and summary["images"] == 74
    assert summary["leaked_share"] == round(2 / 24, 4) and summary["anomalies"][0]["severity"] == "block"
    print(f"data_quality: {summary['seconds']} s for {summary['images']} images; findings {summary['counts']}")
    assert f"of the {summary['training_seconds']:.0f} s of training)" in result.stdout  # its cost against training

    report = (tmp_path / "runs" / "runs" / "1" / "report.html").read_text()
    assert "Likely label errors" in report and "Near-duplicates across splits (leakage)" in report
    assert planted["copy"] in report and planted["wrong_test"] in report
    assert "Data quality: 3 likely label errors" in (tmp_path / "runs" / "runs" / "1" / "report.md").read_text()

    again = visionpipe("run", "--config", str(config))  # same data, model and settings: nothing to redo
    assert again.returncode == 1 and stage_rows(again.stdout)["data_quality"][0] == "cached", again.stdout
    limited = visionpipe(
        "run", "--config", str(config), "--stage", "data_quality", "--set", "data_quality.max_images=50"
    )  # fmt: skip
    assert limited.returncode == 0, limited.stdout + limited.stderr
    assert "not checked: 74 images is more than data_quality.max_images (50)" in limited.stdout

    # Acting on it: the findings file as data.exclude (every row starts as drop) leaves the
    # flagged images out of the next run's ingest (the train copies of the leaked pairs with
    # them), the report says how many and why, and export runs.
    curated = visionpipe("run", "--config", str(config), "--set", f"data.exclude={artifact / 'findings.csv'}")
    assert curated.returncode == 0, curated.stdout + curated.stderr
    assert stage_rows(curated.stdout)["export"][0] == "succeeded", curated.stdout
    dropped = {r["path"] for r in rows}
    assert f"curation: {len(dropped)} images left out" in curated.stdout, curated.stdout
    run = max((tmp_path / "runs" / "runs").iterdir(), key=lambda p: int(p.name))
    assert f"Curation: {len(dropped)} images left out by data.exclude (" in (run / "report.md").read_text()
    assert "label issue" in (run / "report.html").read_text().split("Curation:")[1][:200]
    latest = max((tmp_path / "runs" / "artifacts" / "data_quality").iterdir(), key=lambda p: p.stat().st_mtime)
    with (latest / "data_quality" / "findings.csv").open() as file:
        named = {path for r in csv.DictReader(file) for path in (r["path"], r["other_path"])}
    left_out = {planted[k] for k in ("wrong_train_1", "wrong_train_2", "wrong_test", "original", "original_2")}
    assert left_out <= dropped and not left_out & named, named
    assert all(Path(p).is_file() for p in planted.values())  # the user's files stay
