"""One task of a two-process MultiWorkerMirroredStrategy run on 127.0.0.1, or the same training
in one process: ``single`` (one device) or ``mirrored`` (MirroredStrategy over two logical CPU
devices, configured before TensorFlow initialises). A small model, fixed data and seed, global
batch 16. Writes the final weights (the chief or the single process) to the given .npz path;
with EMA, the recipe's optimizer keeps an average of the weights, written after them.

    python multiworker_task.py INDEX PORT0,PORT1 PATCH OUT [EMA]   (INDEX single | mirrored | 0 | 1)
"""

import dataclasses
import json
import os
import sys

index, ports, patch, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "patch", sys.argv[4]
ema = sys.argv[5:] == ["EMA"]
if index.isdigit():
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": int(index)}}
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if patch:
    from visionpipe.components.train import keras_compat

    print(keras_compat.apply(), flush=True)

if index == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
elif index == "single":
    strategy = tf.distribute.get_strategy()
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype(np.float32)
y = keras.utils.to_categorical(rng.integers(0, 3, 64), 3)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
data = data.with_options(options)
keras.utils.set_random_seed(0)
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    optimizer = keras.optimizers.SGD(0.1)
    if ema:
        from visionpipe.components.train.config import TrainConfig
        from visionpipe.components.train.recipe import make_optimizer

        recipe = TrainConfig(optimizer="sgd", momentum=0.0, learning_rate=0.1, schedule="constant", warmup_epochs=0)
        optimizer = make_optimizer(dataclasses.replace(recipe, weight_decay=0.0, ema_epochs=1), model, 12, 4)
    model.compile(optimizer, keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(data, epochs=3, verbose=0)
averages = [average.numpy() for _, average in optimizer.averaged()] if ema else []
if index in ("0", "single", "mirrored"):
    np.savez(out, *model.get_weights(), *averages, loss=np.array(history.history["loss"]))
print("finished", flush=True)
