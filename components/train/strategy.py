"""Chooses the tf.distribute strategy from config: one device, several GPUs, workers, or TPU.

``auto``: a TPU when a TPU cluster resolver finds one; several workers when the cluster that
TensorFlow reads from ``TF_CONFIG`` has more than one task; the local GPUs (mirrored) when
there are several; else the default single-device strategy. Multi-worker training applies
``keras_compat``'s fixes first. ``describe`` says what was chosen, for the log and the run's
metadata.
"""

from __future__ import annotations

import json

import tensorflow as tf

from visionpipe.components.train import keras_compat
from visionpipe.components.train.config import TrainConfig
from visionpipe.pipeline.errors import UserError


def _cluster() -> dict:
    """The cluster of this process as TensorFlow reads it (from TF_CONFIG); {} if none."""
    return tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec().as_dict()


def _tpu(address: str):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError):
        return None
    return resolver


def choose_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    name = config.strategy
    gpus = tf.config.list_physical_devices("GPU")  # logical devices would start TensorFlow too early
    resolver = None
    if name == "auto":
        resolver = _tpu(config.tpu_address) if config.tpu_address else None
        tasks = sum(len(v) if isinstance(v, list) else len(v.keys()) for v in _cluster().values())
        if resolver is not None:
            name = "tpu"
        elif tasks > 1:
            name = "multi_worker"
        else:
            name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        keras_compat.apply()
        try:  # reads the cluster from TF_CONFIG, which the cluster launcher sets on every worker
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as err:
            if "program startup" not in str(err):
                raise
            raise UserError(
                "multi-worker training must be the first TensorFlow work of its process, and an earlier "
                "stage of this run already used TensorFlow; run the stages before train first, then start "
                "every task with: visionpipe run --from train"
            ) from None
    if name == "tpu":
        resolver = resolver or _tpu(config.tpu_address)
        if resolver is None:
            raise UserError("train.strategy=tpu but no TPU was found; set train.tpu_address or use train.strategy=auto")
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown train.strategy {name!r}")


# The names users know (tf.distribute's public ones) for classes whose own name differs.
_PUBLIC_NAMES = {
    "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
    "_DefaultDistributionStrategy": "default (one device)",
}


def describe(strategy: tf.distribute.Strategy) -> dict:
    """Strategy, replicas, devices and cluster, for the log and the run's metadata."""
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has none to list: the one default device
        devices = []
    return {
        "strategy": _PUBLIC_NAMES.get(type(strategy).__name__, type(strategy).__name__),
        "replicas": strategy.num_replicas_in_sync,
        "devices": devices,
        "cluster": json.loads(json.dumps(_cluster())),
        "is_chief": is_chief(strategy),
    }


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model, checkpoints and logs (the others write to temp)."""
    extended = strategy.extended
    if hasattr(extended, "should_checkpoint"):
        return bool(extended.should_checkpoint)
    return True


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """This worker's task (e.g. "worker-1"), for per-worker paths; "" outside multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return ""
    return f"{resolver.task_type}-{resolver.task_id}"


def shard_for_workers(dataset: tf.data.Dataset, examples, split: str, distribution: dict) -> tf.data.Dataset:
    """Each worker reads its share of ``split``: whole TFRecord files when there are at least as
    many as workers (no worker reads what another discards), else its slice of every batch."""
    from visionpipe.data.records import split_files

    workers = sum(len(v) for k, v in distribution["cluster"].items() if k in ("worker", "chief"))
    files = len(split_files(examples, split))
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.FILE if files >= workers else policy.DATA
    return dataset.with_options(options)
