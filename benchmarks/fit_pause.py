"""The fit pause: how long Keras' ``fit`` takes to return after its last training step.

With tf.data's autotuning model on, deleting the training iterator at the end of ``fit`` waited
out the autotuning thread's sleep (up to 60 s) in about one run of two (TensorFlow 2.21,
BENCHMARKS.md "The fit pause"). visionpipe's pipelines now run with the model off
(``data/records.py`` ``prefetched``). This benchmark trains ``configs/cifar_fast.yaml``'s model
and pipeline for one epoch on the CIFAR-10 train folder, with the pipeline as visionpipe builds
it (candidate) and with the autotuning model turned back on (baseline), each repeat in a fresh
process, interleaved, and prints per repeat and as medians: the seconds from the last step to
``fit``'s return (the pause), the whole fit, and the steps per second of the epoch.

    python benchmarks/fit_pause.py /tmp/cifar10 --work /tmp/fit_pause --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "cifar_fast.yaml"
CONTENDERS = {"autotuning model on (before)": "on", "visionpipe (model off)": "off"}


def ingested(folder: Path, work: Path) -> Path:
    """The Examples folder of an ingest of ``folder`` under ``work`` (cached across runs)."""
    root = work / "root"
    command = [str(Path(sys.executable).parent / "visionpipe"), "run", "--config", str(CONFIG), "--stage", "ingest"]
    command += ["--set", f"run.root={root}", "--set", f"data.path={folder}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return max((root / "artifacts" / "ingest").glob("*/examples"), key=lambda p: int(p.parent.name))


def one_fit(examples: Path, autotune: str) -> dict:
    """Train cifar_fast's model for one epoch; the timings, as a dict."""
    import keras
    import tensorflow as tf
    from examples_pipeline import train_pipeline

    from visionpipe import load_config
    from visionpipe.components.train.input_pipeline import CacheChoice
    from visionpipe.components.train.recipe import build_and_compile

    config = load_config(CONFIG)
    memory = CacheChoice("memory", "", 0.0, "benchmark")
    train, classes, count, spec, _ = train_pipeline(examples, config, config.seed, memory)
    if autotune == "on":
        options = tf.data.Options()
        options.autotune.enabled = True
        train = train.with_options(options)
    steps = -(-count // config.train.batch_size)
    model = build_and_compile(config.train, config.model, spec, len(classes), steps).trainee

    class LastStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.at = time.perf_counter()

    last = LastStep()
    started = time.perf_counter()
    model.fit(train, epochs=1, verbose=0, callbacks=[last])
    returned = time.perf_counter()
    return {"pause": returned - last.at, "fit": returned - started, "steps_per_s": steps / (last.at - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="CIFAR-10 JPEG folder with train/ and test/")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fit_pause"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("EXAMPLES", "AUTOTUNE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_fit(Path(args.child[0]), args.child[1])))
        return
    examples = ingested(args.folder, args.work)
    results: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for repeat in range(args.repeats):
        names = list(CONTENDERS)[repeat % 2 :] + list(CONTENDERS)[: repeat % 2]  # alternate who goes first
        for name in names:
            out = subprocess.run(
                [sys.executable, __file__, str(args.folder), "--child", str(examples), CONTENDERS[name]],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[name][-1].items()))
    print("\n| pipeline | pause after the last step, s (each repeat) | median pause | median fit s | median steps/s |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        each = ", ".join(f"{r['pause']:.1f}" for r in runs)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {name} | {each} | {med['pause']:.2f} | {med['fit']:.1f} | {med['steps_per_s']:.2f} |")


if __name__ == "__main__":
    main()
