"""The tune stage through the CLI: a search the train stage consumes, resuming a killed search,
a changed range starting a new one, every trial failing, and a distributed search."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import REPO, stage_rows, visionpipe
from tests.processes import free_ports, run_together, signal_on_line

pytestmark = pytest.mark.slow

SPACE = """tune:
  enabled: true
  tuner: random
  max_trials: 4
  max_epochs: 1
  space:
    train.learning_rate: {log: [0.003, 0.03]}
    model.args.width: {choice: [4, 8]}
"""


def project(tmp_path: Path, space: str = SPACE, root: str = "runs") -> Path:
    data = tmp_path / "images"
    if not data.exists():
        make_folder(data, per_class=20)
    config = tmp_path / f"{root}.yaml"
    config.write_text(tiny_config_yaml(tmp_path / root, data) + space)
    return config


def ingest_and_validate(config: Path) -> None:
    for stage in ("ingest", "validate"):
        out = visionpipe("run", "--config", str(config), "--stage", stage)
        assert out.returncode == 0, out.stdout + out.stderr


def latest(root: Path, stage: str) -> Path:
    return max((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name))


def trials(root: Path) -> list[dict]:
    with (latest(root, "tune") / "best_hyperparameters" / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_search_feeds_train_and_lineage_shows_it(tmp_path, monkeypatch):
    # Trials with and without an EMA: a trial with one is scored on its averaged weights.
    space = SPACE + "    train.ema_epochs: {choice: [0.0, 1.0]}\n"
    config = project(tmp_path, space + f"tracking:\n  mlflow_uri: {tmp_path / 'mlruns'}\n")
    out = visionpipe("run", "--config", str(config), "--stage", "ingest")
    out = visionpipe("run", "--config", str(config), "--from", "validate", "--set", "export.tflite_int8=false")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = stage_rows(out.stdout)
    assert list(rows) == ["validate", "tune", "train", "evaluate", "data_quality", "export", "push"]
    assert len(trials(tmp_path / "runs")) == 4 and all(t["status"] == "COMPLETED" for t in trials(tmp_path / "runs"))
    best = json.loads((latest(tmp_path / "runs", "tune") / "best_hyperparameters" / "best_hyperparameters.txt")
                      .read_text())  # fmt: skip
    assert set(best["values"]) == {"train.learning_rate", "model.args.width", "train.ema_epochs"}
    params = json.loads((latest(tmp_path / "runs", "train") / "model" / "params.json").read_text())
    assert params["train"]["learning_rate"] == best["values"]["train.learning_rate"]
    assert params["model"]["args"]["width"] == best["values"]["model.args.width"]
    runs = visionpipe("runs", "--config", str(config), "--lineage")
    assert runs.returncode == 0, runs.stderr
    assert "train <- tune.best_hyperparameters" in runs.stdout

    # Tracking: a train run with its params, metrics and model; a tune run with a run per trial.
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading a local file store

    client = MlflowClient((tmp_path / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("visionpipe").experiment_id])
    assert sum(r.info.run_name.startswith("tune ") for r in runs) == 1
    train = next(r for r in runs if r.info.run_name == "train")
    assert float(train.data.params["train.learning_rate"]) == best["values"]["train.learning_rate"]
    assert "val_accuracy" in train.data.metrics
    assert "model.keras" in [a.path for a in client.list_artifacts(train.info.run_id)]
    assert sum(r.info.run_name.startswith("trial") for r in runs) == 4

    disabled = visionpipe("run", "--config", str(config), "--set", "tune.enabled=false", "--stage", "train")
    assert "tune" not in stage_rows(disabled.stdout) and "tuned" not in disabled.stdout


def test_a_killed_search_resumes_and_a_changed_range_starts_anew(tmp_path):
    config = project(tmp_path)
    ingest_and_validate(config)
    command = [sys.executable, "-m", "visionpipe", "run", "--config", str(config), "--stage", "tune"]
    killed = signal_on_line(command, " tune      trial 2/4:", signal.SIGKILL, timeout=300, cwd=REPO)  # in trial 3
    assert killed.returncode == -signal.SIGKILL, "the search finished before it could be killed"

    resumed = visionpipe("run", "--config", str(config), "--stage", "tune")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 trials already finished are kept" in resumed.stdout
    assert " tune      trial 1/4:" not in resumed.stdout and " tune      trial 3/4:" in resumed.stdout
    assert len(trials(tmp_path / "runs")) == 4

    # Space keys hold dots, so an override replaces the whole space.
    space = "tune.space={train.learning_rate: {log: [0.001, 0.1]}, model.args.width: {choice: [4, 8]}}"
    changed = visionpipe("run", "--config", str(config), "--stage", "tune", "--set", space)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "a new search" in changed.stdout and "the space changed since search" in changed.stdout
    assert " tune      trial 1/4:" in changed.stdout


def test_a_search_where_every_trial_fails_fails_with_their_errors(tmp_path):
    config = project(tmp_path, SPACE.replace("{choice: [4, 8]}", "{choice: [-1, -2]}"))
    out = visionpipe("run", "--config", str(config), "--stage", "ingest")
    out = visionpipe("run", "--config", str(config), "--from", "validate")
    assert out.returncode == 1
    rows = stage_rows(out.stdout)
    assert rows["tune"][0] == "failed" and rows["train"][0] == "not"
    assert "no trial of the search completed (4 failed): trial 1: ValueError" in out.stderr
    assert "filters" in out.stderr and "Traceback" not in out.stderr


def test_distributed_search_chief_and_two_workers(tmp_path):
    shared = tmp_path / "shared_tuning"
    space = SPACE + f"  directory: {shared}\n"
    roots = {name: project(tmp_path, space, root=name) for name in ("chief", "tuner0", "tuner1")}
    for config in roots.values():
        ingest_and_validate(config)
    port = str(free_ports(1)[0])
    envs = {
        name: {**os.environ, "KERASTUNER_TUNER_ID": name, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": port}
        for name in roots
    }  # fmt: skip
    commands = {
        name: [sys.executable, "-m", "visionpipe", "run", "--config", str(config), "--stage", "tune"]
        for name, config in roots.items()
    }
    done = run_together(commands, timeout=300, envs=envs, cwd=REPO)
    outputs = {name: d.stdout for name, d in done.items()}
    for name, d in done.items():
        assert d.returncode == 0, f"{name}:\n{d.stdout}"
    ran = {name: outputs[name].count(" tune      trial ") for name in ("tuner0", "tuner1")}
    assert sum(ran.values()) == 4 and all(ran.values()), ran
    assert "best of 4 trials" in outputs["chief"]
    assert len(trials(tmp_path / "chief")) == 4
