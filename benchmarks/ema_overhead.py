"""What the EMA of the weights costs a training step: the same model and batch trained with no
EMA, with ``train.ema_epochs`` (components/train/ema.py: every trainable variable and BatchNorm
statistic averaged inside the compiled train step) and, for reference, with Keras' own
optimizer EMA (trainable variables only, no warm-up), all in the same run.

Each contender trains on one synthetic in-memory batch (no input pipeline) for ``--steps``
steps after a warm-up; rounds are interleaved and the tables show medians of ``--repeats``
with the ratio to no EMA, in wall time and in this process's CPU time (on a machine shared
with other jobs the CPU time is the steadier figure). CIFAR-sized by default: ResNet-9 width
16 at 32x32, batch 64.

    python benchmarks/ema_overhead.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import time

from ratios import Rates
from synthetic import model_config, one_batch, training_args

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default='resnet9:{"width": 16}', help='name or name:{"arg": value}')
    training_args(parser, batch=64, steps=20, repeats=9)
    args = parser.parse_args()

    import keras

    from visionpipe.components.train.config import TrainConfig
    from visionpipe.components.train.recipe import make_optimizer
    from visionpipe.models.classifier import build_classifier

    size = args.image_size
    spec, batch = one_batch(size, args.batch)
    config = model_config(args.model)
    models = {}
    contenders = (("no EMA", 0, False), ("ema_epochs", 1, False), ("Keras use_ema", 0, True))
    for contender, ema_epochs, keras_ema in contenders:
        keras.utils.set_random_seed(0)
        model = build_classifier(spec, 10, config)
        optimizer = make_optimizer(TrainConfig(ema_epochs=ema_epochs), model, 1000, steps_per_epoch=100)
        optimizer.use_ema = keras_ema
        model.compile(optimizer, loss="categorical_crossentropy")
        model.fit(batch, steps_per_epoch=3, epochs=1, verbose=0)  # build and trace
        averaged = len(optimizer.averaged()) if ema_epochs else len(model.trainable_variables) if keras_ema else 0
        print(f"{contender}: {averaged} variables averaged", flush=True)
        models[contender] = model

    wall, cpu = Rates(), Rates("images/CPU s")
    for repeat in range(args.repeats):
        by_wall, by_cpu = {}, {}
        for contender, model in models.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(batch, steps_per_epoch=args.steps, epochs=1, verbose=0)
            by_wall[contender] = args.steps * args.batch / (time.perf_counter() - start)
            by_cpu[contender] = args.steps * args.batch / (time.process_time() - start_cpu)
        wall.add_repeat(repeat, by_wall)
        cpu.add_repeat(repeat, by_cpu)
    print(f"\n{args.model} on one in-memory batch of {args.batch} at {size}x{size}, medians of {args.repeats} repeats")
    for rates, unit in ((wall, "wall"), (cpu, "CPU")):
        print(rates.table({"vs no EMA": "no EMA"}))
        step_ms = {c: 1000 * args.batch / r for c, r in rates.medians().items()}
        print(f"step {unit} time: " + ", ".join(f"{c} {ms:.1f} ms" for c, ms in step_ms.items()) + "\n")


if __name__ == "__main__":
    main()
