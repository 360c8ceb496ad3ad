"""Batch-1 latency of every registered model's TFLite files on this CPU: float32, dynamic-range
int8, full-integer int8 (``export.int8_float_ops: none``) and the default int8 file (``auto``:
the operators XNNPACK runs only in float32 stay float32, and so do the convolutions reading the
image; the same file with those convolutions quantized is timed beside it), converted by the export stage's own
converters, timed as the export stage times them (ai-edge-litert with XNNPACK, median of 100
calls after 10 warm-up calls), interleaved over repeats. Weights are random: latency does not
depend on what was learnt.

Where int8 is slower, the reason is read off the file: the operators XNNPACK leaves to LiteRT's
own kernels (``int8.undelegated_ops``; each one also splits the graph into another partition).

With ``--channels FRACTION``, each model's channel-pruned copy (``export.compression.channels``,
``channel_pruning.py``) is converted and timed too, float32 and int8, in the same rounds: a
second table of the speed-up pruning buys against the unpruned file of the same precision.

    python benchmarks/tflite_latency.py --repeats 3 --threads 1 [--channels 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The input size each model is used at on a phone here: the CIFAR-sized models at 32, the
# photo models at the photos preset's 96 (ViT at its default patch grid).
SIZES = {"airbench": 32, "resnet9": 32, "small_cnn": 32}
PHOTO_SIZE = 96
KINDS = ("float32", "dynamic_int8", "full_int8", "int8_quantized_stem", "int8")
CHANNEL_KINDS = ("channels_float32", "channels_int8")
MACS: dict[str, tuple[int, int]] = {}  # model -> its multiply-accumulates before and after channel pruning


def convert_all(name: str, folder: Path, relu_for_hard_swish: bool = False, channels: float = 0.0) -> dict[str, Path]:
    import keras

    from visionpipe.components.export import tflite
    from visionpipe.components.export.channel_pruning import pruned
    from visionpipe.models.classifier import build_classifier
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.preprocessing import PreprocessingSpec

    size = SIZES.get(name, PHOTO_SIZE)
    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec(size, size, 3, "crop", (0.5,) * 3, (0.25,) * 3)
    with _relu_for_hard_swish() if relu_for_hard_swish else contextlib.nullcontext():
        model = build_classifier(spec, 10, ModelConfig(name))
    rng = np.random.default_rng(0)
    calibration = [rng.random((1, size, size, 3), np.float32) for _ in range(16)]
    files = {
        "float32": tflite.convert_float(model),
        "dynamic_int8": tflite.convert_dynamic_range(model),
        "full_int8": tflite.convert_int8(model, calibration, "none"),
        "int8_quantized_stem": _with_quantized_stem(lambda: tflite.convert_int8(model, calibration)),
        "int8": tflite.convert_int8(model, calibration),
    }
    if channels:
        narrower = pruned(model, channels)
        MACS[name] = narrower.macs
        files["channels_float32"] = tflite.convert_float(narrower.network)
        files["channels_int8"] = tflite.convert_int8(narrower.network, calibration)
    paths = {}
    for kind, data in files.items():
        paths[kind] = folder / f"{name}_{kind}.tflite"
        paths[kind].write_bytes(data)
    return paths


def _with_quantized_stem(convert):
    """``convert()`` as export converted before it kept the operators reading the image in
    float32 (``int8.image_operators``): an ablation, to see what that buys."""
    from unittest import mock

    from visionpipe.components.export import int8

    with mock.patch.object(int8, "image_operators", lambda _: []):
        return convert()


def _relu_for_hard_swish():
    """While building: keras.applications' MobileNetV3 puts ReLU where it puts hard-swish (the
    same network otherwise), to see what the activation itself costs in each file."""
    from unittest import mock

    import keras
    from keras.src.applications import mobilenet_v3

    return mock.patch.object(mobilenet_v3, "hard_swish", lambda x: keras.layers.ReLU()(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", action="append", help="default: every registered model")
    parser.add_argument("--relu-for-hard-swish", action="store_true", help="an ablation: ReLU in hard-swish's place")
    parser.add_argument("--channels", type=float, default=0.0, help="also time channel-pruned copies (this fraction)")
    args = parser.parse_args()

    from visionpipe.components.export import int8
    from visionpipe.components.export.measure import latency_ms
    from visionpipe.models.registry import model_names
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    names = args.model or model_names()
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: convert_all(name, Path(tmp), args.relu_for_hard_swish, args.channels) for name in names}
        kinds = KINDS + (CHANNEL_KINDS if args.channels else ())
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for name, paths in files.items():
                for kind in kinds:  # interleaved: every file once per round
                    size = SIZES.get(name, PHOTO_SIZE)
                    image = np.random.default_rng(1).random((1, size, size, 3), np.float32)
                    runner = TFLiteClassifier(paths[kind], args.threads)
                    ms = latency_ms(runner.predict, image, args.threads)[f"p50_ms_{args.threads}t"]
                    times.setdefault((name, kind), []).append(ms)
        print(
            "| model (input) | float32 ms | dynamic int8 ms | full-integer int8 ms | int8, stem quantized ms | "
            "int8 ms | int8 speed-up | full-integer ops outside XNNPACK | int8 ops outside XNNPACK |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name in names:
            median = {kind: statistics.median(times[(name, kind)]) for kind in KINDS}
            size = SIZES.get(name, PHOTO_SIZE)
            outside = {
                kind: _ops(int8.undelegated_ops(files[name][kind].read_bytes())) for kind in ("full_int8", "int8")
            }
            print(
                f"| {name} ({size}x{size}) | {median['float32']:.3f} | {median['dynamic_int8']:.3f} | "
                f"{median['full_int8']:.3f} | {median['int8_quantized_stem']:.3f} | {median['int8']:.3f} | "
                f"{median['float32'] / median['int8']:.2f}x | "
                f"{outside['full_int8']} | {outside['int8']} |",
                flush=True,
            )
        print(f"batch 1, {args.threads} thread(s), medians of {args.repeats} interleaved rounds of 100 calls")
        if args.channels:
            _channels_table(names, times, args.channels)


def _channels_table(names: list[str], times: dict[tuple[str, str], list[float]], fraction: float) -> None:
    print(f"\nchannel pruning, {fraction:.0%} of each prunable convolution's filters removed:")
    print(
        "| model | MACs before -> after | float32 ms | pruned float32 ms | speed-up "
        "| int8 ms | pruned int8 ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        m = {kind: statistics.median(times[(name, kind)]) for kind in KINDS + CHANNEL_KINDS}
        before, after = MACS[name]
        print(
            f"| {name} | {before / 1e6:.1f}M -> {after / 1e6:.1f}M | {m['float32']:.3f} | {m['channels_float32']:.3f} "
            f"| {m['float32'] / m['channels_float32']:.2f}x | {m['int8']:.3f} | {m['channels_int8']:.3f} | "
            f"{m['int8'] / m['channels_int8']:.2f}x |",
            flush=True,
        )


def _ops(counts) -> str:
    return ", ".join(f"{op} x{n}" for op, n in counts.most_common()) or "none"


if __name__ == "__main__":
    main()
