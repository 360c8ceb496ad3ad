"""Training images/s of one process against the same training under tf.distribute on this
machine: MirroredStrategy over two logical CPU devices, and two MultiWorkerMirroredStrategy
worker processes on 127.0.0.1. On a machine whose cores one process already keeps busy this
measures the cost of the replication and communication, not a speed-up.

Every contender trains the same registered model at the same global batch on CIFAR-10 images
decoded once from the class folder into memory, for ``--steps`` steps after a warm-up, in a
fresh process (logical devices and TF_CONFIG must be set before TensorFlow starts). Rounds are
interleaved; medians of ``--repeats``.

    python benchmarks/distributed_throughput.py /tmp/cifar10/train --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ratios import Rates

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.processes: ports and process groups

CONTENDERS = ("one process", "mirrored, 2 logical CPUs", "2 workers on 127.0.0.1")


def decode_images(folder: Path, count: int, out: Path) -> None:
    """The first ``count`` images (round-robin over the classes) as uint8 arrays in ``out``."""
    import numpy as np
    from PIL import Image

    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    files = [sorted(c.iterdir()) for c in classes]
    images, labels = [], []
    for i in range(count):
        label = i % len(classes)
        images.append(np.asarray(Image.open(files[label][i // len(classes)]).convert("RGB")))
        labels.append(label)
    np.savez(out, images=np.stack(images), labels=np.array(labels))


def train(task: str, data: Path, model_text: str, batch: int, steps: int) -> None:
    """One contender's process: trains and prints its images/s (the chief's, for workers)."""
    import tensorflow as tf

    from visionpipe.components.train import keras_compat
    from visionpipe.components.train.config import TrainConfig
    from visionpipe.components.train.recipe import compile_model
    from visionpipe.models.classifier import build_classifier
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.preprocessing import PreprocessingSpec
    from visionpipe.models.registry import check_args

    if task == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif task == "worker":
        keras_compat.apply()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    import numpy as np

    arrays = np.load(data)
    num_classes = int(arrays["labels"].max()) + 1
    images = tf.data.Dataset.from_tensor_slices((arrays["images"], tf.one_hot(arrays["labels"], num_classes)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (
        images.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .shuffle(4096, seed=0)
        .repeat()
        .batch(batch, drop_remainder=True)
        .prefetch(2)
        .with_options(options)
    )
    name, _, raw = model_text.partition(":")
    size = arrays["images"].shape[1]
    spec = PreprocessingSpec(size, size, 3, "stretch", (0.5,) * 3, (0.25,) * 3)
    with strategy.scope():
        config = ModelConfig(name=name, args=check_args(name, json.loads(raw or "{}")))
        model = build_classifier(spec, num_classes, config)
        compile_model(model, TrainConfig(batch_size=batch), num_classes, steps_per_epoch=steps, epochs=100)
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # build, trace, connect
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    print(json.dumps({"images_per_second": steps * batch / (time.perf_counter() - start)}), flush=True)


def measure(contender: str, args, data: Path) -> float:
    from tests.processes import free_ports, run_together
    from visionpipe.pipeline.cluster import tf_configs

    def command(task: str) -> list[str]:
        return [sys.executable, __file__, "--task", task, "--data", str(data), "--model", args.model,
                "--batch", str(args.batch), "--steps", str(args.steps)]  # fmt: skip

    if contender == CONTENDERS[2]:
        configs = tf_configs([f"127.0.0.1:{port}" for port in free_ports(2)])
        envs = {i: {**os.environ, "TF_CONFIG": tf_config} for i, tf_config in enumerate(configs)}
        commands = {i: command("worker") for i in envs}
    else:
        commands, envs = {0: command("single" if contender == CONTENDERS[0] else "mirrored")}, None
    done = run_together(commands, timeout=1800, envs=envs)
    for result in done.values():
        if result.returncode != 0:
            raise RuntimeError(f"{contender} failed:\n{result.stdout[-3000:]}")
    return json.loads(done[0].stdout.strip().splitlines()[-1])["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="class folders of images (CIFAR-10 train/)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--model", default='resnet9:{"width": 16}', help='name or name:{"arg": value}')
    parser.add_argument("--batch", type=int, default=256, help="the global batch")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", help=argparse.SUPPRESS)  # internal: one contender's process
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        train(args.task, args.data, args.model, args.batch, args.steps)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "images.npz"
        decode_images(args.folder, args.images, data)
        rates = Rates()
        for repeat in range(args.repeats):
            rates.add_repeat(repeat, {contender: measure(contender, args, data) for contender in CONTENDERS})
    print(f"\n{args.model}, global batch {args.batch}, {args.steps} steps, medians of {args.repeats} repeats")
    print(rates.table({"vs one process": CONTENDERS[0]}))


if __name__ == "__main__":
    main()
