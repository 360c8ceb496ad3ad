"""This process's place in a multi-worker training cluster, read from ``TF_CONFIG`` (which
every cluster launcher sets on every task) before TensorFlow is imported.

The chief runs the pipeline and registers what it makes. Every other task only joins the
stages that train across the cluster (``StageSpec.distributed``: train), on the run root it
shares with the chief, and registers nothing. Inside training, ``components.train.strategy``
asks TensorFlow the same question (``is_chief``) and only the chief writes the model.
"""

from __future__ import annotations

import json
import os

from visionpipe.pipeline.errors import UserError

MULTI_WORKER_STRATEGIES = ("auto", "multi_worker")  # train.strategy values that read TF_CONFIG


def non_chief_task(strategy: str) -> str:
    """``"worker-1"`` (task type and index) when this process is a task other than the chief of
    the multi-worker cluster that ``train.strategy`` would join; ``""`` for the chief or a
    process on its own."""
    raw = os.environ.get("TF_CONFIG", "")
    if strategy not in MULTI_WORKER_STRATEGIES or not raw.strip():
        return ""
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config.get("cluster") or {}, tf_config.get("task") or {}
        kind, index = task.get("type", ""), int(task.get("index", 0))
        tasks = sum(len(addresses) for addresses in cluster.values())
    except (ValueError, TypeError, AttributeError) as err:
        raise UserError(
            f"TF_CONFIG is not a cluster description ({err}); expected JSON like "
            '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if tasks < 2:
        return ""
    if kind not in cluster:
        raise UserError(f"TF_CONFIG task type {kind!r} is not in its cluster ({', '.join(cluster)}); fix TF_CONFIG")
    # The chief is the "chief" task, or worker 0 when the cluster names no chief (TensorFlow's rule).
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return "" if chief else f"{kind}-{index}"


def tf_configs(workers: list[str]) -> list[str]:
    """The TF_CONFIG of every task of a multi-worker cluster of ``host:port`` addresses, in
    order; the first is worker 0, the chief."""
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"worker address {address!r} is not host:port (e.g. 10.0.0.5:2222)")
    if len(set(workers)) != len(workers):
        raise UserError(f"worker addresses repeat: {', '.join(workers)}; give each task its own host:port")
    cluster = {"worker": list(workers)}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(len(workers))
    ]
