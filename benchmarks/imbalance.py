"""Class imbalance on CIFAR-10: plain cross-entropy against a prior correction fitted on val,
per-class loss weights, focal loss, and focal loss with the weights.

The train split is the shared CIFAR-10 JPEG folder cut to a long tail (class i keeps
5000 x ratio^(-i/9) images, seeded: 5,000 airplanes down to 100 trucks at the default 50:1, as
symlinks); the test split is balanced (``--test-per-class`` images of every class), so the
accuracy of the rare classes counts as much as the common ones'. Each variant trains the
``cifar_fast`` recipe for ``--epochs`` epochs in one run root (ingest and validate are shared;
10% of train is carved out, stratified, as the val split the prior correction is fitted on;
early stopping is off, as it is for the recipe without a val split: stopped at the peak of its
one-cycle schedule, a run would keep an early epoch),
in turn, for each seed; reported per variant: balanced accuracy and the worst class's recall on
test (medians over seeds, and every seed's figures).

    python benchmarks/imbalance.py /tmp/cifar10 --work /tmp/imbalance --epochs 8 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
# Variant -> the settings it changes (everything else is configs/cifar_fast.yaml's).
# prior_correction trains exactly as cross_entropy (the run root's cache reuses that model) and
# only changes evaluate: the train prior taken out of the logits at a strength fitted on val.
VARIANTS = {
    "cross_entropy": [],
    "prior_correction": ["evaluate.prior_correction=true"],
    "class_weights": ["train.class_balance=weights"],
    "focal": ["train.loss=focal", "train.focal_gamma=2.0"],
    "focal_weights": ["train.loss=focal", "train.focal_gamma=2.0", "train.class_balance=weights"],
}


def long_tail(cifar: Path, out: Path, ratio: float, test_per_class: int, seed: int) -> dict[str, int]:
    """The long-tailed train split and the balanced test split under ``out``; class -> train images."""
    rng = random.Random(seed)
    classes = sorted(p.name for p in (cifar / "train").iterdir())
    kept = {}
    for i, name in enumerate(classes):
        files = sorted((cifar / "train" / name).iterdir())
        rng.shuffle(files)
        kept[name] = round(len(files) * ratio ** (-i / (len(classes) - 1)))
        for split, chosen in (("train", files[: kept[name]]), ("test", sorted((cifar / "test" / name).iterdir()))):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for file in chosen if split == "train" else chosen[:test_per_class]:
                (folder / file.name).symlink_to(file)
    return kept


def run(work: Path, variant: str, seed: int, epochs: int) -> dict:
    overrides = [
        f"run.root={work / 'runs'}", f"data.path={work / 'data'}", f"seed={seed}",
        f"train.epochs={epochs}", "data.split.val=0.1", f"train.early_stopping_patience={epochs}",
        "data_quality.enabled=false", "export.tflite_float=false",
        "export.tflite_int8=false", "evaluate.robustness.enabled=false", *VARIANTS[variant],
    ]  # fmt: skip
    command = [sys.executable, "-m", "visionpipe", "run", "--config", "configs/cifar_fast.yaml"]
    started = time.monotonic()
    log = work / f"{variant}-{seed}.log"
    with log.open("w") as f:
        subprocess.run([*command, *(a for o in overrides for a in ("--set", o))], stdout=f, stderr=subprocess.STDOUT,
                       cwd=REPO, check=False)  # fmt: skip
    evaluations = list((work / "runs" / "artifacts" / "evaluate").glob("*/evaluation/metrics.json"))
    metrics = json.loads(max(evaluations, key=lambda p: p.stat().st_mtime).read_text())
    recalls = {name: c["recall"] for name, c in metrics["per_class"].items()}
    worst = min(recalls, key=recalls.get)
    correction = metrics.get("prior_correction", {})
    return {
        "variant": variant, "seed": seed, "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "accuracy": round(metrics["accuracy"], 4), "prior_strength": correction.get("strength"),
        "worst_class": worst, "worst_recall": round(recalls[worst], 4), "recalls": recalls,
        "seconds": round(time.monotonic() - started),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cifar", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/imbalance"))
    parser.add_argument("--ratio", type=float, default=50.0)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    if not (args.work / "data").exists():
        kept = long_tail(args.cifar, args.work / "data", args.ratio, args.test_per_class, seed=0)
        (args.work / "train_counts.json").write_text(json.dumps(kept))
    rows = [run(args.work, variant, seed, args.epochs) for seed in args.seeds for variant in VARIANTS]
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "recalls"}))
    summary = {
        variant: {
            f"{figure}_median": statistics.median(r[figure] for r in rows if r["variant"] == variant)
            for figure in ("balanced_accuracy", "worst_recall")
        }
        for variant in VARIANTS
    }
    result = {"train_counts": json.loads((args.work / "train_counts.json").read_text()), "runs": rows,
              "summary": summary, "epochs": args.epochs}  # fmt: skip
    (args.work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
