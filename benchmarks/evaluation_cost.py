"""What the trust parts of evaluate cost on a real test split: the full stage against the plain
scoring it replaced, same model, same run, interleaved.

The baseline is ``visionpipe run --stage evaluate --force`` with every new part off (no
temperature fit, no robustness, no gallery, no served-model re-scoring, 1 bootstrap
resample): the metrics evaluate computed before issue 14. The candidate is the same command
with the defaults (1,000 bootstrap resamples, temperature fitted on val, six corruptions at
three severities and FGSM at three epsilons on 2,000 images, a 12-image Grad-CAM gallery,
the served model re-scored when one has been pushed). Times are the evaluate stage's own
seconds from the run summary (process start and imports excluded). Target (issue 14): the
candidate adds at most 120 s on a 10,000-image test split.

    python benchmarks/evaluation_cost.py --config configs/cifar10.yaml --root /tmp/cifar_eval --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLAIN = [
    "evaluate.temperature_scaling=false",
    "evaluate.robustness.enabled=false",
    "evaluate.gallery_images=0",
    "evaluate.baseline.enabled=false",
    "evaluate.bootstrap_resamples=1",
]


def evaluate_seconds(config: str, root: str, settings: list[str]) -> float:
    command = [sys.executable, "-m", "visionpipe", "run", "--config", config, "--set", f"run.root={root}",
               "--stage", "evaluate", "--force"]  # fmt: skip
    for setting in settings:
        command += ["--set", setting]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("evaluate ") and "succeeded" in line)
    return float(row.split()[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--root", required=True, help="run.root of a run that has trained a model")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain, full = [], []
    for repeat in range(args.repeats):  # interleaved: the machine's noise hits both alike
        plain.append(evaluate_seconds(args.config, args.root, PLAIN))
        full.append(evaluate_seconds(args.config, args.root, []))
        print(f"repeat {repeat + 1}: plain {plain[-1]:.1f} s, full {full[-1]:.1f} s", flush=True)
    p, f = statistics.median(plain), statistics.median(full)
    print(f"median plain {p:.1f} s, full {f:.1f} s: the trust parts add {f - p:.1f} s ({f / p:.2f}x)")


if __name__ == "__main__":
    main()
