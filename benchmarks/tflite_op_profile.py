"""Where each registered model's int8 file spends its time against its float32 file, per operator.

Converts a model as ``tflite_latency.py`` does (the export stage's converters, random weights,
batch 1) and profiles its float32, full-integer int8 and int8 files with LiteRT's own profiler
(``litert_profiler.py``: XNNPACK's per-operator times, 1 thread). Prints each file's median call,
the time per operator kind (XNNPACK's names without the data type: "Convolution IGEMM", "DWConv",
"Fully Connected GEMM", ...), and the operators whose int8 time exceeds their float32 time the
most (the n-th operator of a kind in one file matched with the n-th of that kind in the other).

    python benchmarks/tflite_op_profile.py --model mobilenet_v3_small [--model ...] [--calls 300]
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import tempfile
from pathlib import Path

from litert_profiler import Operator, profile
from tflite_latency import convert_all

FILES = ("float32", "full_int8", "int8")


def kind(operator: Operator) -> str:
    """XNNPACK's name without its layout and data types: "Convolution (NHWC, QC8) IGEMM" ->
    "Convolution IGEMM"; an operator outside XNNPACK keeps its TFLite name, marked."""
    name = re.sub(r"\s*\([^)]*\)", "", operator.name)
    return name if operator.delegated else f"{name} (outside XNNPACK)"


def by_kind(operators: list[Operator]) -> dict[str, list[float]]:
    """kind -> the times of its operators, in the file's order."""
    kinds: dict[str, list[float]] = collections.defaultdict(list)
    for operator in operators:
        kinds[kind(operator)].append(operator.microseconds)
    return kinds


def report(name: str, profiles: dict) -> None:
    medians = ", ".join(f"{k} {statistics.median(p.invoke_microseconds):.0f} us" for k, p in profiles.items())
    print(f"\n{name}: median call {medians}")
    kinds = {k: by_kind(p.operators) for k, p in profiles.items()}
    names = sorted(set().union(*kinds.values()), key=lambda n: -sum(kinds["int8"].get(n, [0.0])))
    print(f"{'operator kind':<40}" + "".join(f"{k + ' us':>14}" for k in FILES) + f"{'count':>9}")
    for n in names:
        counts = "/".join(str(len(kinds[k].get(n, []))) for k in FILES)
        print(f"{n:<40}" + "".join(f"{sum(kinds[k].get(n, [])):>14.1f}" for k in FILES) + f"{counts:>9}")
    costs = []  # (int8 - float32 us, kind, n, int8 us, float32 us)
    for n, times in kinds["int8"].items():
        floats = kinds["float32"].get(n, [])
        costs += [(t - floats[i], n, i, t, floats[i]) for i, t in enumerate(times) if i < len(floats)]
    print("int8 operators slowest against their float32 counterpart (the n-th of its kind in each file):")
    for extra, n, i, t, f in sorted(costs, reverse=True)[:5]:
        print(f"  {n} #{i + 1}: int8 {t:.1f} us, float32 {f:.1f} us ({extra:+.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.model:
            paths = convert_all(name, Path(folder))
            report(name, {k: profile(paths[k], args.threads, args.calls) for k in FILES})


if __name__ == "__main__":
    main()
