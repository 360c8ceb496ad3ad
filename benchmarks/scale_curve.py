"""The scale curve: ingest, validate, the training input pipeline and evaluate at growing N, with
wall time, images/s and peak memory of each step.

A seeded generator writes N small images in 10 class folders: each class a colour and a shape
on a noisy background, sizes from 24 to 64 pixels a side, 80% JPEG and 20% PNG, some grayscale,
and one undecodable file per 2,000 (which ingest must quarantine, never drop). Every step runs
in its own process; its peak RSS is ``wait4``'s ru_maxrss (the process, or the largest of the
Beam worker processes it waited for). The input pipeline step iterates one epoch of the train
split through visionpipe's training pipeline (decode, cache by the memory/file budgets,
shuffle, augment, batch); evaluate scores the test split (10% of N) with a small CNN trained
for 20 steps (the model's quality is not the point), robustness off.

    python benchmarks/scale_curve.py --work /tmp/scale --sizes 10000 100000
    python benchmarks/scale_curve.py --work /tmp/scale --sizes 100000 1000000 --steps ingest

(``--steps ingest`` on a new ``--work`` folder is a first ingest; run again, it re-ingests into
the same run root, whose previous split index every image then keeps its split by.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SETTINGS = [
    "preprocessing.image_size=[32,32]",
    "preprocessing.channels=3",
    "data.split.train=0.8",
    "data.split.val=0.1",
    "data.split.test=0.1",
    "model.name=small_cnn",
    "train.epochs=1",
    "train.steps_per_epoch=20",
    "train.batch_size=128",
    "evaluate.robustness.enabled=false",
    "evaluate.gallery_images=0",
    # The planted broken files must be quarantined and reported; they stop training by default.
    "validate.severity.undecodable_image=warn",
]
BAD_EVERY = 2000


def generate(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` images (see the module docstring), the same for the same seed."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, (10, 3))
    for i in range(count):
        label = i % 10
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        if i % BAD_EVERY == BAD_EVERY - 1:
            (folder / f"class{label}" / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
            continue
        side = int(rng.integers(24, 65))
        pixels = rng.normal(128, 40, (side, side, 3))
        lo, hi = side // 4, side // 4 + side // (2 + label % 3)
        pixels[lo:hi, lo:hi] = colours[label]
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        if i % 7 == 0:
            image = image.convert("L")
        image.save(folder / f"class{label}" / f"{i}.{'png' if i % 5 == 0 else 'jpg'}")


def measured(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, output) of one child process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if status:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, output


STEPS = ("ingest", "validate", "input pipeline", "train", "evaluate")  # each needs the ones before it once


def input_epoch(examples: Path) -> None:
    """One epoch of the train split through the training pipeline, as the train stage builds it."""
    from examples_pipeline import train_pipeline

    from visionpipe import load_config

    ds, _, _, _, cache = train_pipeline(examples, load_config(None, SETTINGS), seed=0)
    seen = sum(int(x.shape[0]) for x, _ in ds)
    print(json.dumps({"images": seen, "cache": cache.kind}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="default: every step")
    parser.add_argument("--child-input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_input:
        input_epoch(args.child_input)
        return
    rows = []
    for size in args.sizes:
        data, root = args.work / f"images-{size}", args.work / f"root-{size}"
        if not data.exists():
            started = time.perf_counter()
            generate(data, size)
            print(f"generated {size:,} images in {time.perf_counter() - started:.0f} s", flush=True)
        sets = [f"--set={s}" for s in [f"run.root={root}", "data.source=folder", f"data.path={data}", *SETTINGS]]
        run = [sys.executable, "-m", "visionpipe", "run", *sets, "--force", "--stage"]
        for step in args.steps:
            if step == "input pipeline":
                examples = max((root / "artifacts" / "ingest").glob("*/examples"), key=lambda p: int(p.parent.name))
                seconds, rss, _ = measured([sys.executable, __file__, "--child-input", str(examples)])
                images = int(size * 0.8)
            else:
                seconds, rss, _ = measured([*run, step])
                images = {"evaluate": size // 10, "train": 20 * 128}.get(step, size)
            rows.append((size, step, seconds, images / seconds, rss))
            print(
                f"{size:,} {step}: {seconds:.1f} s, {images / seconds:,.0f} images/s, peak RSS {rss:,.0f} MB",
                flush=True,
            )
    print("\n| N | step | seconds | images/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for size, step, seconds, rate, rss in rows:
        print(f"| {size:,} | {step} | {seconds:.1f} | {rate:,.0f} | {rss:,.0f} |")


if __name__ == "__main__":
    main()
