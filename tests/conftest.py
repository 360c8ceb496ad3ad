"""Shared fixtures: tiny image folders the tests make themselves (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent

# autouse: no global state leaks between tests; the run's seed is printed at the top and bottom
from tests.hermetic import hermetic_globals, pytest_sessionstart, pytest_terminal_summary  # noqa: E402,F401
from tests.tfds_fixture import tfds_data_dir  # noqa: E402,F401  (a fixture for every test module)


def make_image(
    path: Path,
    size: tuple[int, int],
    color: tuple[int, int, int],
    seed: int,
    fmt: str | None = None,
    placed: bool = False,
) -> None:
    """A class-coloured image with noise and a bright square, so classes are learnable. The square
    sits in the same place in every image unless ``placed``: then the seed places it, so that no
    two images are the same picture under noise (data_quality's pixel comparison calls images
    that differ only by noise near-duplicates, rightly)."""
    rng = np.random.default_rng(seed)
    w, h = size
    noise = rng.normal(0, 25, (h, w, 3))
    if placed:  # light falling from a direction of its own
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w]
        noise += 40 * (np.cos(angle) * xs / w + np.sin(angle) * ys / h)[..., None]
    pixels = np.clip(noise + np.array(color), 0, 255).astype(np.uint8)
    top, left = (rng.integers(0, h * 3 // 4), rng.integers(0, w * 3 // 4)) if placed else (h // 4, w // 4)
    pixels[top : top + h // 4, left : left + w // 4] = 255 - np.array(color, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


COLORS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def make_folder(root: Path, per_class: int = 12) -> Path:
    """Three classes, mixed sizes (20-48 px), JPEG and PNG."""
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(per_class):
            size = (20 + (i * 7) % 29, 20 + (i * 11) % 29)
            ext = "png" if i % 3 == 0 else "jpg"
            make_image(root / name / f"img_{i:03d}.{ext}", size, color, seed=c * 1000 + i)
    return root


def make_tagged_image(path: Path, labels: tuple[str, ...], seed: int, size: int = 32) -> None:
    """A multi-label image: a grey noisy background with one square patch of each label's colour
    (COLORS) at a seeded place; an empty label set gives the background alone."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(120, 20, (size, size, 3)), 0, 255)
    side = size // 3
    for name in labels:
        top, left = rng.integers(0, size - side, 2)
        pixels[top : top + side, left : left + side] = COLORS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def make_multi_label_set(root: Path, images: int, seed: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    """``images`` PNGs under ``root``, each with a seeded set of 1 to 3 of the COLORS labels
    (green on about half of them, red and blue less often); returns (file name, labels) rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(images):
        labels = tuple(name for name, p in zip(COLORS, (0.35, 0.5, 0.3), strict=True) if rng.random() < p)
        labels = labels or (str(rng.choice(list(COLORS))),)
        name = f"img_{i:04d}.png"
        make_tagged_image(root / name, labels, seed=seed * 100_000 + i)
        rows.append((name, labels))
    return rows


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


# Tiny folders (a dozen images a class) exercise the pipeline's mechanics, not its verdicts:
# by default validate blocks classes this small, no test split is made for them and the gate
# calls their 3-image test split INCONCLUSIVE. So the tiny config keeps data.split's plain
# fractions, lets such classes train, and judges on the gate's default checks alone (beat the
# majority class with the whole interval, no class with recall 0); the gate's own tests
# (tests/components/test_gate.py, tests/e2e/test_degenerate.py) run with the defaults.
TINY_DATA_LINES = [
    "  split: {min_test_images: 0, min_test_per_class: 0, min_test_size: 0}",
    "validate:",
    "  min_train_images_per_class: 1",
]
TINY_EVALUATE_LINES = ["evaluate:", "  min_images_per_class: 1", "  max_interval_width: 1.0"]
# 8 short epochs at 0.01 learn the coloured classes whatever the seed, with a margin: after 4
# (12 steps), BatchNorm's moving statistics (momentum 0.9) still held a quarter of their initial
# values and one CI run in many kept a model that never recognised red on its one test image
# (NOT BLESSED). An epoch after the first costs well under a second.
TINY_EPOCHS = 8


def tiny_config_yaml(root: Path, data: Path, defaults: bool = False) -> str:
    """A config that trains a tiny model in seconds on ``make_folder`` data; ``defaults`` keeps
    the default split, validate minimum and gate (else the TINY_* lines relax them)."""
    relaxed = not defaults
    lines = [
        "run:",
        f"  root: {root}",
        "data:",
        "  source: folder",
        f"  path: {data}",
        *(TINY_DATA_LINES if relaxed else []),
        "beam:",
        "  direct_running_mode: in_memory",
        "  direct_num_workers: 1",
        "preprocessing:",
        "  image_size: [32, 32]",
        "  channels: 3",
        "  resize_policy: pad",
        "model:",
        "  name: small_cnn",
        "  args: {width: 8}",
        "train:",
        f"  epochs: {TINY_EPOCHS}",
        "  batch_size: 8",
        "  learning_rate: 0.01",
        "  warmup_epochs: 0",
        "  verbose: 0",
        *(TINY_EVALUATE_LINES if relaxed else []),
        "export:",
        "  calibration_samples: 16",
    ]
    return "\n".join(lines) + "\n"
