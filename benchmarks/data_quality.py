"""What the data_quality stage finds on planted faults in the shared data, and what it costs.

``label-noise``: the shared CIFAR-10 folder with a seeded share of the train labels flipped to
another class (the copy is symlinks: a flipped photo's link sits in another class folder); the
``cifar_fast`` preset trains on it and the stage ranks suspected label errors. Precision and
recall of the top N flagged train images against the flipped set, N = the number flipped (and
of everything flagged).

``near-duplicates``: the shared Caltech-101 photos of every class in a ``train/`` + ``test/``
layout (symlinks), with copies of seeded test photos also placed in train: resized (0.5x),
recompressed (JPEG quality 30), or cropped (a 90% centre crop, or 92% off centre). Recall of
those cross-split pairs among the stage's leakage findings, and every other pair it reports
(not planted: natural look-alikes or false pairs) listed for a person to judge, with a contact
sheet of all of them (``other_pairs.png``).

Both report the stage's seconds against the training stage's.

    python benchmarks/data_quality.py label-noise /tmp/cifar10 --work /tmp/dq_noise
    python benchmarks/data_quality.py near-duplicates /tmp/caltech101/101_ObjectCategories --work /tmp/dq_copies \
        --config configs/photos.yaml --epochs 12 --set model.args.width=16
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
LABEL_ISSUE, LEAKAGE = "label_issue", "near_duplicate_leakage"  # DataQuality.KINDS, as findings.json spells them
# Copies made for the near-duplicates set: name -> what is done to the test photo.
COPIES = ("resized", "recompressed", "centre_crop", "offset_crop")


def visionpipe(*args: str, log: Path) -> float:
    """Runs the CLI with its console into ``log``; returns the wall time."""
    started = time.monotonic()
    with log.open("w") as f:
        subprocess.run([sys.executable, "-m", "visionpipe", *args], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    return time.monotonic() - started


def stage_seconds(root: Path) -> dict[str, float]:
    """Seconds of each stage of the latest run under ``root`` (from its metadata store)."""
    db = sqlite3.connect(root / "metadata.sqlite")
    rows = db.execute(
        "SELECT stage, finished - started FROM executions WHERE run_id = (SELECT MAX(id) FROM runs)"
    ).fetchall()
    return {stage: round(seconds or 0.0, 1) for stage, seconds in rows}


def findings(root: Path) -> dict:
    runs = [p for p in (root / "artifacts" / "data_quality").glob("*") if p.name.isdigit()]
    latest = max(runs, key=lambda p: int(p.name))
    return json.loads((latest / "data_quality" / "findings.json").read_text())


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve())


# ---------------------------------------------------------------- label noise on CIFAR-10


def make_noisy(cifar: Path, out: Path, share: float, seed: int) -> list[str]:
    """The noisy copy under ``out``; returns the flipped train files' paths (as ingest sees them)."""
    rng = random.Random(seed)
    classes = sorted(p.name for p in (cifar / "train").iterdir())
    train = sorted((c, f) for c in classes for f in sorted((cifar / "train" / c).iterdir()))
    flipped = set(rng.sample(range(len(train)), round(share * len(train))))
    paths = []
    for i, (label, file) in enumerate(train):
        given = rng.choice([c for c in classes if c != label]) if i in flipped else label
        target = out / "train" / given / f"{label}_{file.name}"  # the file name keeps the true class
        link(file, target)
        if i in flipped:
            paths.append(str(target))
    for label in classes:
        for file in sorted((cifar / "test" / label).iterdir()):
            link(file, out / "test" / label / file.name)
    return paths


def label_noise(args) -> dict:
    data, root = args.work / "data", args.work / "runs"
    if not data.exists():
        flipped = make_noisy(args.cifar, data, args.share, args.seed)
        (args.work / "flipped.json").write_text(json.dumps(flipped))
    flipped = set(json.loads((args.work / "flipped.json").read_text()))
    overrides = [
        f"run.root={root}", f"data.path={data}", f"data_quality.max_images={70_000}",
        "data_quality.max_training_share=100",  # measure the stage's cost even where it is over its default share
        "export.tflite_float=false", "export.tflite_int8=false", f"train.epochs={args.epochs}",
    ]  # fmt: skip
    wall = visionpipe(
        "run", "--config", "configs/cifar_fast.yaml", *(a for o in overrides for a in ("--set", o)),
        log=args.work / "run.log",
    )  # fmt: skip
    record = findings(root)
    train_issues = [f for f in record["findings"] if f["kind"] == LABEL_ISSUE and f["split"] == "train"]
    top = {f["path"] for f in train_issues[: len(flipped)]}  # ranked: the least likely labels first
    flagged = {f["path"] for f in train_issues}
    seconds = stage_seconds(root)
    return {
        "flipped": len(flipped),
        "flagged_train": len(flagged),
        "top_n_precision": round(len(top & flipped) / max(len(top), 1), 4),
        "top_n_recall": round(len(top & flipped) / len(flipped), 4),
        "all_flagged_precision": round(len(flagged & flipped) / max(len(flagged), 1), 4),
        "all_flagged_recall": round(len(flagged & flipped) / len(flipped), 4),
        "flagged_test": sum(f["kind"] == LABEL_ISSUE and f["split"] == "test" for f in record["findings"]),
        "model_accuracy_val_test": record["summary"].get("model_accuracy_val_test"),
        "data_quality_seconds": seconds.get("data_quality"),
        "embedding_pass_seconds": record["summary"].get("seconds_embedding"),
        "stage_share_of_fit_time": record["summary"].get("share_of_training"),
        "train_seconds": seconds.get("train"),
        "stage_seconds": seconds,
        "wall_seconds": round(wall),
    }


# ---------------------------------------------------------------- planted copies in Caltech-101


def copy_of(source: Path, target: Path, how: str, rng: random.Random) -> None:
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    if how == "resized":
        image = image.resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR)
    elif how == "centre_crop":
        image = image.crop((round(0.05 * w), round(0.05 * h), round(0.95 * w), round(0.95 * h)))
    elif how == "offset_crop":
        left, top = rng.choice([(0, 0), (0.08, 0.08), (0, 0.08), (0.08, 0)])
        image = image.crop((round(left * w), round(top * h), round((left + 0.92) * w), round((top + 0.92) * h)))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=30 if how == "recompressed" else 90)


def make_copies(caltech: Path, out: Path, per_class: int, test_share: float, planted: int, seed: int) -> list:
    """The train/test layout under ``out`` with ``planted`` copies of test photos in train;
    returns (train copy, test original, how) for each, as ingest sees the paths."""
    rng = random.Random(seed)
    tests = []
    for folder in sorted(caltech.iterdir()):
        files = sorted(folder.iterdir())[:per_class]
        rng.shuffle(files)
        cut = max(1, round(test_share * len(files)))
        for file in files[:cut]:
            link(file, out / "test" / folder.name / file.name)
            tests.append((folder.name, file))
        for file in files[cut:]:
            link(file, out / "train" / folder.name / file.name)
    pairs = []
    for n, (label, file) in enumerate(rng.sample(tests, planted)):
        how = COPIES[n % len(COPIES)]
        target = out / "train" / label / f"copy_{how}_{file.stem}.jpg"
        copy_of(file, target, how, rng)
        pairs.append((str(target), str(out / "test" / label / file.name), how))
    return pairs


def contact_sheet(pairs: list[dict], out: Path) -> None:
    """Every pair side by side, 96 px a photo, three pairs a row, each with its number, pixel
    correlation and class: for a person to judge which pairs are copies."""
    size, per_row = 96, 3
    width, height = 2 * size + 16, size + 14
    rows = max(1, -(-len(pairs) // per_row))
    sheet = Image.new("RGB", (per_row * width, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    for n, pair in enumerate(pairs):
        x, y = (n % per_row) * width, (n // per_row) * height
        for column, key in enumerate(("path", "other_path")):
            with Image.open(pair[key]) as image:
                thumb = image.convert("RGB")
                thumb.thumbnail((size, size))
                sheet.paste(thumb, (x + column * (size + 4), y))
        draw.text((x, y + size + 1), f"{n} {pair['pixel_correlation']:.3f} {pair['label']}", fill="black")
    sheet.save(out)


def near_duplicates(args) -> dict:
    data, root = args.work / "data", args.work / "runs"
    if not data.exists():
        pairs = make_copies(args.caltech, data, args.per_class, 0.3, args.planted, args.seed)
        (args.work / "planted.json").write_text(json.dumps(pairs))
    planted = {(copy, original): how for copy, original, how in json.loads((args.work / "planted.json").read_text())}
    overrides = [
        f"run.root={root}", f"data.path={data}", "export.tflite_float=false", "export.tflite_int8=false",
        "validate.severity.near_duplicate_leakage=warn",  # measure the findings; export is not the point here
        *([f"train.epochs={args.epochs}"] if args.epochs else []),
        *args.set,
    ]  # fmt: skip
    wall = visionpipe(
        "run", "--config", str(args.config), *(a for o in overrides for a in ("--set", o)), log=args.work / "run.log"
    )
    record = findings(root)
    leaks = [f for f in record["findings"] if f["kind"] == LEAKAGE]
    found = {(f["path"], f["other_path"]) for f in leaks}
    by_how = {how: [0, 0] for how in COPIES}
    for pair, how in planted.items():
        by_how[how][0] += pair in found
        by_how[how][1] += 1
    others = [f for f in leaks if (f["path"], f["other_path"]) not in planted]
    contact_sheet(others, args.work / "other_pairs.png")
    seconds = stage_seconds(root)
    return {
        "planted": len(planted),
        "recall": round(sum(found_n for found_n, _ in by_how.values()) / len(planted), 4),
        "recall_by_copy": {how: f"{n}/{of}" for how, (n, of) in by_how.items()},
        "other_cross_split_pairs": len(others),
        "planted_lowest_correlation": min(
            (f["pixel_correlation"] for f in leaks if (f["path"], f["other_path"]) in planted), default=None
        ),
        "other_pairs": [
            (f["path"], f["other_path"], f["pixel_correlation"], f["cosine"], f["hash_distance"]) for f in others
        ],
        "images": record["summary"]["images"],
        "model_accuracy_val_test": record["summary"].get("model_accuracy_val_test"),
        "near_duplicate_rule": record["summary"]["near_duplicate_rule"],
        "data_quality_seconds": seconds.get("data_quality"),
        "embedding_pass_seconds": record["summary"].get("seconds_embedding"),
        "stage_share_of_fit_time": record["summary"].get("share_of_training"),
        "train_seconds": seconds.get("train"),
        "stage_seconds": seconds,
        "wall_seconds": round(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    noise = commands.add_parser("label-noise")
    noise.add_argument("cifar", type=Path, help="the unpacked shared CIFAR-10 folder (train/, test/)")
    noise.add_argument("--work", type=Path, required=True)
    noise.add_argument("--share", type=float, default=0.05, help="share of train labels flipped")
    noise.add_argument("--epochs", type=int, default=1, help="train.epochs of cifar_fast (its own: 1)")
    noise.add_argument("--seed", type=int, default=0)
    copies = commands.add_parser("near-duplicates")
    copies.add_argument("caltech", type=Path, help="the unpacked shared 101_ObjectCategories folder")
    copies.add_argument("--work", type=Path, required=True)
    copies.add_argument("--config", type=Path, required=True, help="the visionpipe config to train with")
    copies.add_argument("--per-class", type=int, default=40, help="photos taken from each class")
    copies.add_argument("--planted", type=int, default=100)
    copies.add_argument("--epochs", type=int, default=0, help="train.epochs (0: the config's)")
    copies.add_argument("--set", action="append", default=[], help="another config override, KEY=VALUE")
    copies.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = label_noise(args) if args.command == "label-noise" else near_duplicates(args)
    print(json.dumps(result, indent=2))
    (args.work / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
