"""The tune stage on a CIFAR-10 subset: Hyperband and random search under the same wall-clock
budget, against the default config, each retrained by the train stage and scored on test.

A subset folder is linked from the CIFAR-10 JPEG folder (``--per-class`` train images per
class and a fifth as many test images; val is carved from train), ingested once. Contenders:

- default: the base config trained as it is (no tune stage);
- random / hyperband: the tune stage with ``tune.max_seconds`` = ``--budget`` over the space
  (``--space``, default SPACE below), then the train stage retrained with the best values.

    python benchmarks/tune_search.py /tmp/cifar10 --budget 300
    python benchmarks/tune_search.py /tmp/cifar10 --space '{train.batch_size: {choice: [32, 64, 128]}, ...}'
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BASE = [
    "preprocessing.image_size=[32, 32]",
    "preprocessing.channels=3",
    "model.name=resnet9",
    "model.args={width: 16}",
    "train.epochs=4",
    "train.batch_size=128",
    "data.split={train: 0.9, val: 0.1, test: 0.0}",
    "train.augment.policy=[flip_horizontal, translate]",
    "export.tflite_int8=false",
    "export.tflite_float=false",
]
SPACE = (
    "{train.learning_rate: {log: [0.0003, 0.03]}, train.weight_decay: {log: [0.00001, 0.01]}, "
    "train.label_smoothing: {range: [0.0, 0.2]}, train.optimizer: {choice: [adamw, sgd]}}"
)


def subset(folder: Path, per_class: int, out: Path) -> Path:
    for split, count in (("train", per_class), ("test", per_class // 5)):
        for class_dir in sorted((folder / split).iterdir()):
            target = out / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(class_dir.iterdir())[:count]:
                if not (target / path.name).exists():
                    os.symlink(path, target / path.name)
    return out


def contender(root: Path, data: Path, extra: list[str]) -> dict:
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(None, [f"run.root={root}", "data.source=folder", f"data.path={data}", *BASE, *extra])
    started = time.perf_counter()
    result = run_pipeline(config, start="ingest", force=False)
    assert result.ok, result.failure()
    stages = {s.stage: s for s in result.stages}
    return {
        "seconds": time.perf_counter() - started,
        "tune": stages["tune"].summary if "tune" in stages else {},
        "val": stages["train"].summary["val_accuracy"],
        "test": stages["evaluate"].summary["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="CIFAR-10 JPEG folder with train/ and test/")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=300, help="seconds each search may take")
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--space", default=SPACE, help="tune.space, as YAML (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vp-bench-tune")
    args = parser.parse_args()
    data = subset(args.folder, args.per_class, args.work / "data")
    search = [
        "tune.enabled=true",
        f"tune.space={args.space}",
        f"tune.max_seconds={args.budget}",
        f"tune.max_trials={args.max_trials}",
    ]
    results = {
        "default": contender(args.work / "default", data, []),
        "random": contender(args.work / "random", data, [*search, "tune.tuner=random", "tune.max_epochs=4"]),
        "hyperband": contender(args.work / "hyperband", data, [*search, "tune.tuner=hyperband", "tune.max_epochs=4"]),
    }
    print(f"\nCIFAR-10 subset: {args.per_class} train images per class; search budget {args.budget:.0f} s")
    print(f"space: {args.space}")
    print(f"{'contender':<10} {'trials':>6} {'best trial val':>14} {'retrained val':>13} {'test':>7} {'seconds':>8}")
    for name, r in results.items():
        tune = r["tune"]
        best, trials = (f"{tune['best_score']:.4f}", tune["trials"]) if tune else ("-", "-")
        print(f"{name:<10} {trials:>6} {best:>14} {r['val']:>13.4f} {r['test']:>7.4f} {r['seconds']:>8.0f}")


if __name__ == "__main__":
    main()
