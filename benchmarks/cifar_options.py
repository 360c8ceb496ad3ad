"""CIFAR-10: ``cifar_94`` against variants of itself (recipe options), interleaved, one script.

Each repeat trains and evaluates ``cifar_94`` as configured and then each variant (the same
preset with overrides), in turn, so a noisy machine slows all alike; medians per contender and
each variant's difference from the preset are printed. This is how an option earns its place
in the preset ("keep what helps", issue 24): same data, same machine, same run.

    python benchmarks/cifar_options.py /tmp/cifar10 --repeats 2 \\
        --variant 'alternating flips: train.augment.policy=[flip_alternating, {op: translate, magnitude: 0.0625}]' \\
        --variant 'muon: train.optimizer=muon; train.learning_rate=0.02'

A variant is ``name: key=value; key=value``. Times are the train stage's ``fit_seconds``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cifar_recipes import preset


def variant(text: str) -> tuple[str, list[str]]:
    """``name: key=value; key=value`` -> (name, overrides)."""
    name, _, overrides = text.partition(":")
    if not overrides.strip():
        raise argparse.ArgumentTypeError(f"a variant is 'name: key=value; key=value'; got {text!r}")
    return name.strip(), [o.strip() for o in overrides.split(";") if o.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="CIFAR-10 JPEG folder with train/ and test/")
    parser.add_argument("--preset", default="cifar_94")
    parser.add_argument("--variant", type=variant, action="append", required=True)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "vp-bench-cifar-options")
    args = parser.parse_args()

    contenders = [(args.preset, []), *args.variant]
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in contenders}
    for repeat in range(1, args.repeats + 1):
        for name, overrides in contenders:
            # One root for all: ingest and validate run once; train and evaluate are forced.
            accuracy, seconds, summary = preset(args.preset, args.folder, args.root, overrides)
            results[name].append((accuracy, summary.get("tta_accuracy", accuracy), seconds))
            print(f"repeat {repeat}: {name}: {accuracy:.4f}, with TTA {results[name][-1][1]:.4f}, in {seconds:.0f} s",
                  flush=True)  # fmt: skip

    medians = {name: [statistics.median(v) for v in zip(*runs, strict=True)] for name, runs in results.items()}
    base_accuracy, base_tta, base_seconds = medians[args.preset]
    print(f"\nmedians of {args.repeats} repeat(s), against {args.preset} as configured")
    width = max(len(name) for name in medians)
    print(f"{'contender':<{width}} {'accuracy':>8} {'with TTA':>8} {'train s':>8} {'TTA points':>10} {'time':>6}")
    for name, (accuracy, tta, seconds) in medians.items():
        print(f"{name:<{width}} {accuracy:>8.4f} {tta:>8.4f} {seconds:>8.0f} {100 * (tta - base_tta):>+10.2f} "
              f"{seconds / base_seconds:>5.2f}x")  # fmt: skip
    for name, overrides in args.variant:
        print(f"{name}: {'; '.join(overrides)}")


if __name__ == "__main__":
    main()
