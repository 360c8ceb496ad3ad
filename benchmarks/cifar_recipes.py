"""CIFAR-10 recipes against the keras.io beginner CNN, same run: accuracy and time to train.

The baseline is the TensorFlow/keras.io beginner CNN (three 3x3 convolutions of 32/64/64
filters with max-pooling, a 64-unit dense layer, Adam, 10 epochs, batch 32) on the same JPEG
folder, read by ``image_dataset_from_directory`` and cached in memory: its test accuracy is
A0 and its training time T0 (``fit`` alone, the images already decoded into memory). Each
visionpipe preset (``--preset``, default cifar_fast) runs through ``run_pipeline``: ingest and
validate first (not timed), then train, timed like T0 from the start of training (the train
stage's ``fit_seconds``; its first epoch also decodes the images), and evaluate on the
official test split. Targets (issue 11): cifar_fast
reaches A0 within T0/3; cifar_94 reaches 94%.

    python benchmarks/cifar_recipes.py /tmp/cifar10 --repeats 1 [--preset cifar_94]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent


def keras_io_baseline(folder: Path, epochs: int) -> tuple[float, float]:
    """(test accuracy, training seconds) of the keras.io beginner CNN."""
    import keras
    import tensorflow as tf
    from keras import layers

    def load(split: str, shuffle: bool):
        data = keras.utils.image_dataset_from_directory(
            folder / split, image_size=(32, 32), batch_size=32, shuffle=shuffle, seed=0, verbose=False
        )
        return data.cache().prefetch(tf.data.AUTOTUNE)

    train, test = load("train", True), load("test", False)
    for _ in train:  # decode into the cache before the clock starts, as the tutorial loads arrays
        pass
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    return model.evaluate(test, verbose=0)[1], seconds


def preset(name: str, folder: Path, root: Path, overrides: Sequence[str] = ()) -> tuple[float, float, dict]:
    """(test accuracy, train stage seconds, evaluate summary) of a visionpipe preset, with
    ``overrides`` (``key=value``) on top of its config."""
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(REPO / "configs" / f"{name}.yaml", [f"run.root={root}", f"data.path={folder}", *overrides])
    for stage in ("ingest", "validate"):
        assert run_pipeline(config, only=stage).ok
    result = run_pipeline(config, only="train", force=True)
    assert result.ok, result.failure()
    seconds = result.stages[0].summary["fit_seconds"]  # from the start of training, like T0
    result = run_pipeline(config, only="evaluate", force=True)
    assert result.ok, result.failure()
    summary = result.stages[0].summary
    return summary["accuracy"], seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="CIFAR-10 JPEG folder with train/ and test/")
    parser.add_argument("--preset", action="append", help="configs/<preset>.yaml; default cifar_fast")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline-epochs", type=int, default=10)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "vp-bench-cifar")
    args = parser.parse_args()
    presets = args.preset or ["cifar_fast"]
    results: dict[str, list[tuple[float, float]]] = {}
    for repeat in range(args.repeats):
        accuracy, seconds = keras_io_baseline(args.folder, args.baseline_epochs)
        results.setdefault("keras.io CNN", []).append((accuracy, seconds))
        print(f"repeat {repeat + 1}: keras.io CNN test accuracy {accuracy:.4f} in {seconds:.0f} s", flush=True)
        for name in presets:
            accuracy, seconds, summary = preset(name, args.folder, args.root / name)
            results.setdefault(name, []).append((accuracy, seconds))
            tta = f", with TTA {summary['tta_accuracy']:.4f}" if "tta_accuracy" in summary else ""
            print(f"repeat {repeat + 1}: {name} test accuracy {accuracy:.4f}{tta} in {seconds:.0f} s", flush=True)

    a0, t0 = (statistics.median(v) for v in zip(*results["keras.io CNN"], strict=True))
    print(f"\nmedians of {args.repeats} repeats; A0 = {a0:.4f}, T0 = {t0:.0f} s")
    print(f"{'contender':<14} {'test accuracy':>13} {'train seconds':>13} {'time vs T0':>10}")
    for name, values in results.items():
        accuracy, seconds = (statistics.median(v) for v in zip(*values, strict=True))
        print(f"{name:<14} {accuracy:>13.4f} {seconds:>13.0f} {seconds / t0:>9.2f}x")


if __name__ == "__main__":
    main()
