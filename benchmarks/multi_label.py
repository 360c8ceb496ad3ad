"""Multi-label on CIFAR-10 mosaics: a sigmoid head against a softmax head, and per-label
thresholds fitted on val against a fixed 0.5.

No public multi-label photo set can be fetched here, so this builds one from the shared
CIFAR-10 JPEGs (seeded): 2x2 mosaics at 64x64 whose labels are the classes they contain (each
mosaic draws 1 to 4 distinct classes, then fills its four tiles with them), tiles from CIFAR's
train images for the train split and from its test images for the test split, listed in a
manifest. visionpipe ingests the manifest (val is carved out of train) and validates it; then
the same network (``configs/cifar_fast.yaml``'s airbench, optimizer, schedule, augmentation and
Lookahead) is trained twice with visionpipe's own recipe code, for the same epochs on the same
batches: with the sigmoid head and binary cross-entropy that ``task: multi_label`` trains, and
with a softmax head on the label set spread evenly over its labels (the baseline: one network,
no independent per-label decision). Both are scored on test: mAP (macro and micro) from their
probabilities, and micro F1 of their decisions: the sigmoid model at per-label thresholds
fitted on val (visionpipe's evaluate) and at 0.5, the softmax model at its top-k labels, k the
train split's mean number of labels per image, rounded.

    python benchmarks/multi_label.py /tmp/cifar10 --work /tmp/mosaics --epochs 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TILE = 32


def build_mosaics(cifar: Path, out: Path, train: int, test: int, seed: int) -> Path:
    """Writes the mosaics and ``mosaics.csv`` (path, label, split) under ``out``; returns the manifest."""
    rng = random.Random(seed)
    classes = sorted(p.name for p in (cifar / "train").iterdir())
    pools = {split: {c: sorted((cifar / split / c).iterdir()) for c in classes} for split in ("train", "test")}
    rows = []
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            chosen = rng.sample(classes, rng.randint(1, 4))
            tiles = chosen + [rng.choice(chosen) for _ in range(4 - len(chosen))]
            rng.shuffle(tiles)
            mosaic = Image.new("RGB", (2 * TILE, 2 * TILE))
            for t, name in enumerate(tiles):
                with Image.open(rng.choice(pools[split][name])) as tile:
                    mosaic.paste(tile.convert("RGB"), ((t % 2) * TILE, (t // 2) * TILE))
            path = out / split / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            mosaic.save(path)
            rows.append((str(path.relative_to(out)), "|".join(sorted(chosen)), split))
    manifest = out / "mosaics.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return manifest


def load(manifest: Path, work: Path, epochs: int, seed: int):
    """The config, and ingest + validate run by visionpipe on the manifest: (config, Examples, Statistics)."""
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(
        str(REPO / "configs" / "cifar_fast.yaml"),
        [f"run.root={work / 'runs'}", "data.source=manifest", f"data.path={manifest}", f"seed={seed}",
         "data.split.val=0.1", "data.split.test=0.1", "preprocessing.image_size=[64, 64]", f"train.epochs={epochs}"],
    )  # fmt: skip
    artifacts = {}
    for stage in ("ingest", "validate"):
        result = run_pipeline(config, only=stage).stages[0]
        if result.status not in ("succeeded", "cached"):
            raise SystemExit(f"{stage} {result.status}: {result.message}")
        artifacts.update(result.outputs)
    return config, artifacts["examples"], artifacts["statistics"]


def train_and_score(config, examples, statistics, head: str) -> dict:
    """Trains the recipe's network with a ``head`` (sigmoid or softmax) head; the test figures."""
    import keras
    import tensorflow as tf

    from visionpipe.components.common import label_metrics as lm
    from visionpipe.components.common.dataset import image_dataset
    from visionpipe.components.train.augment import build_policy
    from visionpipe.components.train.callbacks import Lookahead
    from visionpipe.components.train.input_pipeline import CacheChoice, training_dataset
    from visionpipe.components.train.recipe import build_and_compile
    from visionpipe.models.classifier import adapt_to_data, preprocessing_spec

    keras.utils.set_random_seed(config.seed)
    cfg, classes, counts = config.train, examples.classes, examples.split_counts
    sigmoid = head == "sigmoid"
    spec = preprocessing_spec(config.preprocessing, statistics.pixel_mean, statistics.pixel_std)
    memory = CacheChoice("memory", "", 0.0, "benchmark")
    train = training_dataset(examples.path, spec, len(classes), cfg.batch_size, config.input, config.seed, memory,
                             build_policy(cfg.augment, config.seed), multi_label=True)  # fmt: skip
    if not sigmoid:  # the label set spread evenly over its labels: what a softmax can be taught
        train = train.map(lambda x, y: (x, y / tf.maximum(tf.reduce_sum(y, axis=1, keepdims=True), 1.0)))
    steps = int(np.ceil(counts["train"] / cfg.batch_size))
    compiled = build_and_compile(cfg, config.model, spec, len(classes), steps, multi_label=sigmoid)
    sample = np.concatenate([x.numpy() for x, _ in image_dataset(examples.path, "train", spec, len(classes), 256,
                                                                  multi_label=True).take(20)])  # fmt: skip
    adapt_to_data(compiled.classifier, sample[:5000])
    look = cfg.lookahead
    started = time.monotonic()
    compiled.trainee.fit(train, epochs=cfg.epochs, verbose=0,
                         callbacks=[Lookahead(look.every, look.decay, look.power, cfg.epochs * steps)])  # fmt: skip
    seconds = time.monotonic() - started

    def scored(split):
        data = image_dataset(examples.path, split, spec, len(classes), 256, multi_label=True)
        labels, probabilities = [], []
        for x, y in data:
            labels.append(y.numpy().astype(int))
            probabilities.append(compiled.classifier.predict_on_batch(x))
        return np.concatenate(labels), np.concatenate(probabilities)

    test_labels, test_probabilities = scored("test")
    result = {"head": head, "epochs": cfg.epochs, "fit_seconds": round(seconds),
              "map": round(lm.mean_ap(test_labels, test_probabilities), 4),
              "micro_map": round(lm.micro_map(test_labels, test_probabilities), 4)}  # fmt: skip
    if sigmoid:
        val_labels, val_probabilities = scored("val")
        fitted = lm.fit_thresholds(val_labels, val_probabilities, None, 10)
        cut = np.array([t["threshold"] for t in fitted])
        for name, decided in (("fitted", test_probabilities >= cut), ("0.5", test_probabilities >= 0.5)):
            averages = lm.decisions_metrics(test_labels, decided.astype(int), classes)["averages"]
            result[f"micro_f1_at_{name}"] = round(averages["micro"]["f1"], 4)
        result["thresholds"] = [round(float(t), 3) for t in cut]
    else:
        k = round(statistics.split_summary("train")["labels_per_image"])
        top = np.argsort(-test_probabilities, axis=1)[:, :k]
        decided = np.zeros_like(test_labels)
        np.put_along_axis(decided, top, 1, axis=1)
        averages = lm.decisions_metrics(test_labels, decided, classes)["averages"]
        result.update({"top_k": k, "micro_f1_at_top_k": round(averages["micro"]["f1"], 4)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cifar", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mosaics"))
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--test", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = args.work / "data" / "mosaics.csv"
    if not manifest.is_file():
        build_mosaics(args.cifar, args.work / "data", args.train, args.test, args.seed)
    config, examples, statistics = load(manifest, args.work, args.epochs, args.seed)
    rows = [train_and_score(config, examples, statistics, head) for head in ("sigmoid", "softmax")]
    for row in rows:
        print(json.dumps(row))
    (args.work / "result.json").write_text(json.dumps({"splits": examples.split_counts, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
