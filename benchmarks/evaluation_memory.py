"""Evaluate's peak memory at two test-split sizes: the streaming EvalSplit against the code
before it (a git worktree of ``--before``, which held every decoded image and its encoded bytes).

Each size gets its own run root: a generated folder (train 300, val 60 and ``--sizes`` test
images, 48x48 JPEGs of 3 colour classes with noise), ingested and used to train small_cnn at
224x224 for one epoch; then ``visionpipe run --stage evaluate --force`` runs once per code
version per repeat, interleaved, each in a fresh process whose peak RSS (``wait4``'s
ru_maxrss) and seconds are recorded. Robustness and TTA are off (their image sample is
bounded anyway); the split is decoded at 224x224 (147 KB per image).

    python benchmarks/evaluation_memory.py --work /tmp/eval_memory --sizes 8000 16000 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SETTINGS = [
    "model.name=small_cnn",
    "preprocessing.image_size=[224,224]",
    "preprocessing.channels=3",
    "train.epochs=1",
    "train.batch_size=32",
    "evaluate.robustness.enabled=false",
    "evaluate.tta=none",
]
CLASSES = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def make_folder(folder: Path, test_images: int) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 300), ("val", 60), ("test", test_images)):
        for i in range(count):
            name, colour = list(CLASSES.items())[i % 3]
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            pixels = np.clip(np.array(colour) + rng.normal(0, 60, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / split / name / f"{i}.jpg", quality=90)


def visionpipe(root: Path, data: Path, *args: str, code: Path = REPO) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ``visionpipe run`` with the code in ``code``."""
    sets = [f"--set={s}" for s in [f"run.root={root}", "data.source=folder", f"data.path={data}", *SETTINGS]]
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "visionpipe", "run", *sets, *args], cwd=code, env=env, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"visionpipe run {' '.join(args)} failed under {code} (status {status})")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/eval_memory"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 16000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", default="a86c279", help="the commit before streaming evaluation")
    args = parser.parse_args()
    before = args.work / "before-code"
    if not before.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO, check=True)
    codes = {"before (held in memory)": before, "streaming EvalSplit": REPO}
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for size in args.sizes:
        data, root = args.work / f"images-{size}", args.work / f"root-{size}"
        if not data.exists():
            make_folder(data, size)
        for stage in ("ingest", "validate", "train"):
            visionpipe(root, data, "--stage", stage)
        for repeat in range(args.repeats):
            names = list(codes)[repeat % 2 :] + list(codes)[: repeat % 2]
            for name in names:
                measured = visionpipe(root, data, "--stage", "evaluate", "--force", code=codes[name])
                results.setdefault((size, name), []).append(measured)
                print(f"{size} test images, {name}: {measured[0]:.1f} s, peak RSS {measured[1]:,.0f} MB", flush=True)
    print("\n| test images (224x224) | code | peak RSS MB (median) | seconds (median) |")
    print("|---|---|---|---|")
    for (size, name), runs in results.items():
        rss, seconds = statistics.median(r[1] for r in runs), statistics.median(r[0] for r in runs)
        print(f"| {size:,} | {name} | {rss:,.0f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
