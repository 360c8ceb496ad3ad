"""Does a pruned float32 file run faster here? XNNPACK has sparse kernels for 1x1 convolutions
(its "sparse inference", for float32 files whose weights the converter stores sparse with
``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``); this measures whether the ai-edge-litert runtime
uses them on this CPU.

A model's 1x1 convolution kernels are magnitude-pruned to ``--sparsity`` in place (random
weights: latency does not depend on what was learnt), then three files are timed interleaved
at batch 1 on one thread: the dense original, the pruned weights stored dense, and the pruned
weights stored sparse.

    python benchmarks/sparse_inference.py --model keras_mobilenet_v2 --size 224 --sparsity 0.8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(name: str, size: int):
    import keras

    from visionpipe.models.classifier import build_classifier
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.preprocessing import PreprocessingSpec

    keras.utils.set_random_seed(0)
    if name == "keras_mobilenet_v2":  # keras.applications' own network: nothing before its first convolution
        return keras.applications.MobileNetV2(input_shape=(size, size, 3), weights=None, classes=10)
    return build_classifier(PreprocessingSpec(size, size, 3, "crop", (0.5,) * 3, (0.25,) * 3), 10, ModelConfig(name))


def convert(model, sparse: bool) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp + "/sm", format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp + "/sm")
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return converter.convert()


def prune_pointwise(model, sparsity: float) -> int:
    """Zeroes the smallest ``sparsity`` of each 1x1 convolution kernel; returns how many."""
    import keras

    pruned = 0
    for layer in model._flatten_layers():
        if type(layer) is keras.layers.Conv2D and tuple(layer.kernel.shape[:2]) == (1, 1):
            kernel = layer.kernel.numpy()
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), sparsity)] = 0
            layer.kernel.assign(kernel)
            pruned += 1
    return pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2", help="a registered model, or keras_mobilenet_v2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from visionpipe.components.export.measure import latency_ms
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    model = build(args.model, args.size)
    files = {"dense": convert(model, sparse=False)}
    pruned = prune_pointwise(model, args.sparsity)
    files["pruned, stored dense"] = convert(model, sparse=False)
    files["pruned, stored sparse"] = convert(model, sparse=True)
    image = np.random.default_rng(0).random((1, args.size, args.size, 3), np.float32)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for kind, data in files.items():
                path = Path(tmp) / f"{len(times.get(kind, []))}-{kind.replace(' ', '_')}.tflite"
                path.write_bytes(data)
                ms = latency_ms(TFLiteClassifier(path, 1).predict, image, 1)["p50_ms_1t"]
                times.setdefault(kind, []).append(ms)
    print(f"{args.model} at {args.size}x{args.size}: {pruned} 1x1 convolutions pruned to {args.sparsity:.0%}")
    print("| file | KiB | ms (batch 1, 1 thread) | vs dense |")
    print("|---|---|---|---|")
    dense = statistics.median(times["dense"])
    for kind, data in files.items():
        ms = statistics.median(times[kind])
        print(f"| {kind} | {len(data) // 1024:,} | {ms:.3f} | {dense / ms:.2f}x |")


if __name__ == "__main__":
    main()
