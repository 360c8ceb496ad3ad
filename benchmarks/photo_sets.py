"""Small real photo sets, as users bring them: visionpipe's recipes against a from-scratch baseline.

``make`` builds seeded sets from the shared Caltech-101 photos in the common ``train/`` + ``val/``
layout (symlinks, 60% / 40% of each class): an easy 2-class pair, two hard pairs of look-alike
classes, a 5-class set of 400 photos and a 10-class set of 1,000 (``SETS``).

``run`` trains on each set, one contender after another in the same run:
- ``photos``: ``visionpipe run --config configs/photos.yaml`` (the preset a user would pick);
- ``auto``: ``visionpipe run --data SET`` (no config: the ``auto`` recipe and its time budget);
- ``baseline``: keras.io's "Image classification from scratch" network (a small Xception-style
  CNN with augmentation, 180x180, Adam 3e-4) read through ``image_dataset_from_directory``, on
  exactly visionpipe's splits (the ingest artifact's own file lists, so the carved test split is
  the same images), trained for the same time budget as ``auto`` with early stopping on val.
For each: test accuracy with its bootstrap 95% interval, the gate's verdict, the training time
and, for ``auto``, its estimate.

    python benchmarks/photo_sets.py make /tmp/caltech101/101_ObjectCategories /tmp/photo_sets
    python benchmarks/photo_sets.py run /tmp/photo_sets --root /tmp/photo_runs [--sets easy_pair,...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent

# name -> (classes, photos taken per class); every class of Caltech-101 named here has at least that many.
SETS = {
    "easy_pair": (("airplanes", "Motorbikes"), 150),
    "boats_pair": (("ketch", "schooner"), 114),  # look-alike sailing ships; schooner has 63: all of them
    "birds_pair": (("ibis", "flamingo"), 80),  # look-alike wading birds; flamingo has 67
    "five_classes": (("Leopards", "watch", "bonsai", "car_side", "chandelier"), 80),
    "ten_classes": (
        (
            "Motorbikes",
            "airplanes",
            "Faces_easy",
            "Leopards",
            "watch",
            "bonsai",
            "car_side",
            "chandelier",
            "ketch",
            "hawksbill",
        ),
        100,
    ),  # fmt: skip
}
VAL_SHARE = 0.4
CONTENDERS = ("photos", "auto", "baseline")


def make_sets(caltech: Path, out: Path, seed: int = 0) -> None:
    """Every set of ``SETS`` under ``out/<set>/{train,val}/<class>/`` as symlinks, seeded."""
    for name, (classes, per_class) in SETS.items():
        for label in classes:
            photos = sorted((caltech / label).iterdir())
            random.Random(f"{seed}-{name}-{label}").shuffle(photos)
            chosen = photos[:per_class]
            val = round(len(chosen) * VAL_SHARE)
            for split, files in (("val", chosen[:val]), ("train", chosen[val:])):
                folder = out / name / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for photo in files:
                    (folder / photo.name).unlink(missing_ok=True)
                    (folder / photo.name).symlink_to(photo.resolve())
        print(f"{name}: {len(classes)} classes, {sum(1 for _ in (out / name).rglob('*.jpg'))} photos")


def visionpipe(*args: str, log: Path) -> float:
    """Runs the CLI, its console into ``log``; returns the wall time."""
    started = time.monotonic()
    with log.open("w") as f:
        subprocess.run([sys.executable, "-m", "visionpipe", *args], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    return time.monotonic() - started


def latest(root: Path, stage: str) -> Path | None:
    runs = [p for p in (root / "artifacts" / stage).glob("*") if p.name.isdigit()]
    return max(runs, key=lambda p: int(p.name)) if runs else None


def pipeline_result(root: Path, log: Path, wall: float) -> dict:
    """Test accuracy, interval, verdict and times of the latest run under ``root``."""
    evaluation, train = latest(root, "evaluate"), latest(root, "train")
    if evaluation is None or train is None:
        return {"error": f"no evaluation: see {log}"}
    metrics = json.loads((evaluation / "evaluation" / "metrics.json").read_text())
    blessing = json.loads((evaluation / "blessing" / "blessing.json").read_text())
    history = json.loads((train / "model" / "history.json").read_text())
    return {
        "split": metrics["split"],
        "images": metrics["examples"],
        "accuracy": metrics["accuracy"],
        "interval": metrics["intervals"]["accuracy"],
        "majority": metrics.get("trivial", {}).get("majority", {}).get("accuracy"),
        "verdict": blessing.get("verdict", "BLESSED" if blessing["blessed"] else "NOT BLESSED"),
        "epochs": len(history.get("loss", [])),
        "estimate": _estimate(log),
        "wall_seconds": round(wall),
    }


def _estimate(log: Path) -> str:
    """auto's printed estimate and the actual training time, as the console shows them."""
    lines = [line.split(" ", 2)[-1].strip() for line in log.read_text().splitlines() if "estimat" in line]
    return " | ".join(lines[-2:])


def splits_of(root: Path) -> dict[str, list[tuple[str, str]]]:
    """visionpipe's splits, (source path, class) per split, from the latest ingest's records."""
    import tensorflow as tf

    from visionpipe.data.record_format import parse

    examples = latest(root, "ingest") / "examples"
    found = {}
    for split in ("train", "val", "test"):
        files = sorted(str(p) for p in (examples / split).glob("data-*.tfrecord"))
        records = (parse(r.numpy(), with_image=False) for r in tf.data.TFRecordDataset(files)) if files else ()
        found[split] = [(r.source, r.class_name) for r in records]
    return found


def baseline(root: Path, work: Path, minutes: float, seed: int = 0) -> dict:
    """keras.io's from-scratch network on visionpipe's own splits, for ``minutes`` of training."""
    import keras
    import numpy as np
    import tensorflow as tf

    from visionpipe.components.evaluate.bootstrap import confidence_intervals

    keras.utils.set_random_seed(seed)
    splits = splits_of(root)
    for split, files in splits.items():  # image_dataset_from_directory reads class folders
        for i, (source, label) in enumerate(files):
            link = work / split / label / f"{i:05d}{Path(source).suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(source)
    classes = sorted({label for _, label in splits["train"]})

    def load(split: str, shuffle: bool):
        return keras.utils.image_dataset_from_directory(
            work / split, image_size=(180, 180), batch_size=32, shuffle=shuffle, seed=seed, class_names=classes,
            verbose=False,
        ).cache().prefetch(tf.data.AUTOTUNE)  # fmt: skip

    train, val, test = load("train", True), load("val", False), load("test", False)
    model = keras_io_network((180, 180, 3), len(classes))
    model.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.monotonic()
    budget = StopAfter(minutes * 60)
    stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    history = model.fit(train, validation_data=val, epochs=1000, callbacks=[budget, stop], verbose=0)
    seconds = time.monotonic() - started
    labels = np.concatenate([y.numpy() for _, y in test])
    predicted = model.predict(test, verbose=0).argmax(axis=1)
    interval = confidence_intervals(labels, predicted, len(classes), 1000, seed)["accuracy"]
    return {
        "split": "test",
        "images": len(labels),
        "accuracy": float(np.mean(predicted == labels)),
        "interval": interval,
        "verdict": "-",
        "epochs": len(history.history["loss"]),
        "wall_seconds": round(seconds),
    }


class StopAfter:
    """A callback that ends training at the first epoch end past ``seconds``."""

    def __new__(cls, seconds: float):
        import keras

        class _StopAfter(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.deadline = time.monotonic() + seconds

            def on_epoch_end(self, epoch, logs=None):
                if time.monotonic() > self.deadline:
                    self.model.stop_training = True

        return _StopAfter()


def keras_io_network(input_shape: tuple[int, int, int], num_classes: int):
    """keras.io "Image classification from scratch": augmentation, then a small Xception-style
    network (entry conv 128, separable residual blocks 256/512/728, separable conv 1024)."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    previous = x
    for size in (256, 512, 728):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(size, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    x = layers.BatchNormalization()(layers.SeparableConv2D(1024, 3, padding="same")(x))
    x = layers.GlobalAveragePooling2D()(layers.Activation("relu")(x))
    x = layers.Dropout(0.25)(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def run_set(name: str, folder: Path, root: Path, contenders: list[str], minutes: float) -> dict:
    results = {}
    for contender in contenders:
        runs = root / name / contender
        log = root / name / f"{contender}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if contender == "photos":
            wall = visionpipe("run", "--config", "configs/photos.yaml", "--set", f"data.path={folder}", "--set",
                              f"run.root={runs}", log=log)  # fmt: skip
            results[contender] = pipeline_result(runs, log, wall)
        elif contender == "auto":
            wall = visionpipe("run", "--data", str(folder), "--set", f"run.root={runs}", "--set",
                              f"train.time_budget_minutes={minutes}", log=log)  # fmt: skip
            results[contender] = pipeline_result(runs, log, wall)
        else:  # the baseline trains on auto's (or else the preset's) splits
            source = next((root / name / c for c in ("auto", "photos") if latest(root / name / c, "ingest")), None)
            if source is None:
                visionpipe("run", "--data", str(folder), "--set", f"run.root={runs}", "--stage", "ingest", log=log)
                source = runs
            results[contender] = baseline(source, root / name / "baseline_split", minutes)
        print(f"{name} {contender}: {json.dumps(results[contender])}", flush=True)
    return results


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| set | contender | test images | test accuracy (95% CI) | majority | verdict | epochs | time | estimate |",
        "|---|---|---:|---|---:|---|---:|---:|---|",
    ]
    for name, by_contender in results.items():
        for contender, r in by_contender.items():
            if "error" in r:
                lines.append(f"| {name} | {contender} | | {r['error']} | | | | | |")
                continue
            low, high = r["interval"]
            majority = f"{r['majority']:.3f}" if r.get("majority") is not None else ""
            lines.append(
                f"| {name} | {contender} | {r['images']} | {r['accuracy']:.3f} ({low:.3f}-{high:.3f}) | {majority} "
                f"| {r['verdict']} | {r['epochs']} | {r['wall_seconds']} s | {r.get('estimate', '')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="build the sets from Caltech-101")
    make.add_argument("caltech", type=Path, help="the 101_ObjectCategories folder")
    make.add_argument("out", type=Path)
    run = commands.add_parser("run", help="train every contender on every set")
    run.add_argument("sets", type=Path, help="the folder `make` wrote")
    run.add_argument("--root", type=Path, default=Path("/tmp/photo_runs"))
    run.add_argument("--sets", dest="names", default=",".join(SETS))
    run.add_argument("--contenders", default=",".join(CONTENDERS))
    run.add_argument("--minutes", type=float, default=10.0, help="auto's time budget, and the baseline's")
    args = parser.parse_args()
    if args.command == "make":
        make_sets(args.caltech, args.out)
        return
    results = {}
    for name in args.names.split(","):
        results[name] = run_set(name, args.sets / name, args.root, args.contenders.split(","), args.minutes)
    print(table(results))
    (args.root / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
