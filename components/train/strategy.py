"""Chooses the tf.distribute strategy from config: one device, several GPUs, workers, or TPU."""

from __future__ import annotations

import tensorflow as tf

from visionpipe.pipeline.config import TrainConfig
from visionpipe.pipeline.errors import UserError


def choose_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    name = config.strategy
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        # Reads the cluster from TF_CONFIG, which the cluster launcher sets on every worker.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu_address or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as err:
            raise UserError(
                f"train.strategy=tpu but no TPU was found ({err}); set train.tpu_address or use train.strategy=auto"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown train.strategy {name!r}")
