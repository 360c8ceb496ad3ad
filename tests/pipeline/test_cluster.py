"""Which process of a multi-worker cluster runs the pipeline (the chief) and which only join
training, as read from TF_CONFIG; a malformed TF_CONFIG is a clear error."""

from __future__ import annotations

import json

import pytest

from visionpipe.pipeline.cluster import non_chief_task, tf_configs
from visionpipe.pipeline.errors import UserError

TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def with_tf_config(monkeypatch, cluster: dict, kind: str, index: int) -> None:
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))


@pytest.mark.parametrize(
    ("cluster", "kind", "index", "expected"),
    [
        (TWO_WORKERS, "worker", 0, ""),  # worker 0 is the chief when the cluster names none
        (TWO_WORKERS, "worker", 1, "worker-1"),
        ({"chief": ["127.0.0.1:0"], **TWO_WORKERS}, "chief", 0, ""),
        ({"chief": ["127.0.0.1:0"], **TWO_WORKERS}, "worker", 0, "worker-0"),
        ({"worker": ["127.0.0.1:1"]}, "worker", 0, ""),  # one task: no cluster to join
    ],
)
def test_the_chief_is_the_chief_task_or_else_worker_0(monkeypatch, cluster, kind, index, expected):
    with_tf_config(monkeypatch, cluster, kind, index)
    assert non_chief_task("auto") == expected


def test_without_tf_config_or_a_multi_worker_strategy_every_process_is_its_own_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert non_chief_task("auto") == ""
    with_tf_config(monkeypatch, TWO_WORKERS, "worker", 1)
    assert non_chief_task("default") == "" and non_chief_task("multi_worker") == "worker-1"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "TF_CONFIG is not a cluster description"),
        (json.dumps({"cluster": TWO_WORKERS, "task": {"type": "ps", "index": 0}}), "task type 'ps' is not in"),
    ],
)
def test_a_malformed_tf_config_says_what_to_fix(monkeypatch, raw, says):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(UserError, match=says):
        non_chief_task("auto")


def test_cluster_spec_gives_every_task_its_tf_config_the_first_being_the_chief(monkeypatch):
    roles = []
    for tf_config in tf_configs(["10.0.0.5:2222", "10.0.0.6:2222", "10.0.0.7:2222"]):
        monkeypatch.setenv("TF_CONFIG", tf_config)
        roles.append(non_chief_task("auto"))
    assert roles == ["", "worker-1", "worker-2"]
    for bad, says in (["10.0.0.5", "10.0.0.6:1"], "not host:port"), (["a:1", "a:1"], "repeat"):
        with pytest.raises(UserError, match=says):
            tf_configs(bad)
