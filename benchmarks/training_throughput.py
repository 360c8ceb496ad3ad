"""Training throughput of registered models: images/s and model GFLOP/s against this machine's
matmul peak, all measured in the same run.

Each model trains on one synthetic in-memory batch (so the input pipeline is not measured:
``input_pipeline.py`` does that) for ``--steps`` steps after a warm-up; its FLOPs per image
are counted by TensorFlow's profiler on the forward pass, and a training step is taken as 3x
the forward pass (forward, and the two products of the backward pass). The matmul peak is a
float32 4096x4096 matmul repeated. Rounds are interleaved; medians of ``--repeats``.

    python benchmarks/training_throughput.py --repeats 3 \\
        --model airbench --model 'airbench:{"widths": [32, 64, 64]}' --model 'resnet9:{"width": 16}'
"""

from __future__ import annotations

import argparse
import os
import time

from ratios import Rates
from synthetic import model_config, one_batch, training_args

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def forward_flops(model, input_shape) -> float:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *input_shape], tf.float32)
    )
    graph = convert_variables_to_constants_v2(function).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def matmul_gflops(seconds: float = 3.0) -> float:
    import tensorflow as tf

    a = tf.random.normal([4096, 4096])
    tf.matmul(a, a).numpy()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tf.matmul(a, a).numpy()
        n += 1
    return n * 2 * 4096**3 / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help='name or name:{"arg": value}')
    training_args(parser, batch=512, steps=10, repeats=3)
    args = parser.parse_args()

    from visionpipe.components.train.config import TrainConfig
    from visionpipe.components.train.recipe import compile_model
    from visionpipe.models.classifier import build_classifier

    size = args.image_size
    spec, batch = one_batch(size, args.batch)
    models, flops = {}, {}
    for text in args.model:
        model = build_classifier(spec, 10, model_config(text))
        compile_model(model, TrainConfig(), 10, steps_per_epoch=args.steps, epochs=100)
        model.fit(batch, steps_per_epoch=3, epochs=1, verbose=0)  # build and trace
        models[text], flops[text] = model, 3 * forward_flops(model, spec.input_shape)

    rates, gflops = Rates(), Rates("GFLOP/s")
    for repeat in range(args.repeats):
        measured, achieved = {"matmul peak (GFLOP/s)": matmul_gflops()}, {}
        for text, model in models.items():
            start = time.perf_counter()
            model.fit(batch, steps_per_epoch=args.steps, epochs=1, verbose=0)
            images_per_second = args.steps * args.batch / (time.perf_counter() - start)
            measured[text] = images_per_second
            achieved[text] = images_per_second * flops[text] / 1e9
        achieved["matmul peak"] = measured.pop("matmul peak (GFLOP/s)")
        rates.add_repeat(repeat, measured)
        gflops.add_repeat(repeat, achieved)
    print(f"\ntraining on one in-memory batch of {args.batch} at {size}x{size}, medians of {args.repeats} repeats")
    for text in models:
        forward, trained = flops[text] / 3 / 1e6, flops[text] / 1e9
        print(f"{text}: {forward:.1f} MFLOP forward per image, {trained:.3f} GFLOP per trained image")
    print("\nimages/s")
    print(rates.table({}))
    print("\nmodel GFLOP/s (3x forward FLOPs x images/s) against the matmul peak")
    print(gflops.table({"vs matmul peak": "matmul peak"}))


if __name__ == "__main__":
    main()
