"""Multi-worker training through the CLI: a chief and a worker process on 127.0.0.1 share a run
root; both train, only the chief registers the model and runs the later stages, and a worker
asked to run the data stages is told how to start instead."""

from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import REPO, stage_rows, visionpipe
from tests.processes import free_ports, run_together

pytestmark = pytest.mark.slow


def test_chief_and_worker_train_together_and_only_the_chief_registers(tmp_path):
    make_folder(tmp_path / "images", per_class=16)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", tmp_path / "images") + "  tflite_int8: false\n")
    for stage in ("ingest", "validate"):  # the data stages, once, before the cluster starts
        out = visionpipe("run", "--config", str(config), "--stage", stage)
        assert out.returncode == 0, out.stdout + out.stderr

    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    tf_configs = [visionpipe("cluster-spec", "--workers", workers, "--index", str(i)).stdout.strip() for i in (0, 1)]
    envs = {i: {**os.environ, "TF_CONFIG": tf_config} for i, tf_config in enumerate(tf_configs)}
    worker_alone = visionpipe("run", "--config", str(config), env=envs[1])
    assert worker_alone.returncode == 2  # a usage error
    assert "worker-1 of the multi-worker cluster" in worker_alone.stderr
    assert "visionpipe run --from train" in worker_alone.stderr and "Traceback" not in worker_alone.stderr

    command = [sys.executable, "-m", "visionpipe", "run", "--config", str(config), "--from", "train",
               "--set", "input.cache=file"]  # fmt: skip
    done = run_together({0: command, 1: command}, timeout=420, envs=envs, cwd=REPO)
    for d in done.values():
        assert d.returncode == 0, d.stdout[-4000:]
    chief, worker = stage_rows(done[0].stdout), stage_rows(done[1].stdout)
    assert [chief[stage][0] for stage in ("train", "evaluate", "export")] == ["succeeded"] * 3, done[0].stdout
    assert worker["train"][:2] == ["done", "elsewhere"] and worker["evaluate"][0] == "not", done[1].stdout
    assert "strategy MultiWorkerMirroredStrategy with 2 replicas" in done[0].stdout + done[1].stdout

    runs = visionpipe("runs", "--config", str(config)).stdout
    assert runs.count("\nrun ") + runs.startswith("run ") == 3, runs  # ingest, validate, the chief's
    models = list((tmp_path / "runs" / "artifacts" / "train").glob("*/model/model.keras"))
    assert len(models) == 1
    scratch = tmp_path / "runs" / "scratch"
    assert not list(scratch.glob("train-*-worker-1")), "the worker left its checkpoints behind"
    assert (scratch / "worker-1" / "run.log").is_file()  # its log is kept
    cache = tmp_path / "runs" / "cache"  # one file cache per task: each reads its own share
    for task in ("worker-0", "worker-1"):
        assert list((cache / task).glob("tfdata-*-train*")), list(cache.rglob("*"))
