"""The whole pipeline through the CLI on a generated image folder: every artifact, caching,
single-stage reruns, the gate, predictions, and recovery from a run killed mid-train."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from tests.conftest import TINY_EPOCHS, make_folder, tiny_config_yaml
from tests.e2e.helpers import REPO, stage_rows, visionpipe
from tests.processes import signal_on_line

pytestmark = pytest.mark.slow
STAGES = ["ingest", "validate", "train", "evaluate", "export", "push"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    data = make_folder(tmp / "images")
    config = tmp / "config.yaml"
    config.write_text(tiny_config_yaml(tmp / "runs", data))
    first = visionpipe("run", "--config", str(config))
    # The second run right away: the module's other tests rerun stages, in any order.
    second = visionpipe("run", "--config", str(config))
    return tmp, config, data, first, second


def latest(root: Path, stage: str) -> Path:
    return max((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name))


def first(root: Path, stage: str) -> Path:
    """The stage's output of the module's first run (its other tests add later ones)."""
    return min((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name))


def test_full_run_produces_every_artifact(project):
    tmp, _, data, first_run, _ = project
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    assert all(stage_rows(first_run.stdout)[s][0] == "succeeded" for s in STAGES)
    root = tmp / "runs"

    examples = first(root, "ingest") / "examples"
    for split in ("train", "val", "test"):
        assert list((examples / split).glob("data-*.tfrecord"))
    assert (examples / "quarantine.jsonl").read_text() == ""
    assert json.loads((examples / "classes.json").read_text())["classes"] == ["blue", "green", "red"]

    validate = first(root, "validate")
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString((validate / "statistics" / "stats.pb").read_bytes())
    counts = {d.name: d.num_examples for d in stats.datasets}
    assert counts == {"train": 30, "val": 3, "test": 3}  # 12 per class: 10/1/1, stratified
    schema = text_format.Parse((validate / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema())
    assert list(schema.feature[0].string_domain.value) == ["blue", "green", "red"]
    assert json.loads((validate / "anomalies" / "anomalies.json").read_text()) == []

    model = first(root, "train") / "model"
    for name in ("model.keras", "preprocessing.json", "classes.json", "history.json"):
        assert (model / name).is_file()
    assert list((model / "logs").rglob("events.out.tfevents.*"))

    evaluation = first(root, "evaluate")
    metrics = json.loads((evaluation / "evaluation" / "metrics.json").read_text())
    assert len(metrics["confusion_matrix"]) == 3 and set(metrics["per_class"]) == {"blue", "green", "red"}
    assert json.loads((evaluation / "blessing" / "blessing.json").read_text())["blessed"] is True

    export = first(root, "export") / "exported_model"
    assert (export / "serving" / "visionpipe" / "1" / "saved_model.pb").is_file()
    accuracy = json.loads((export / "artifacts.json").read_text())
    assert set(accuracy) == {"keras", "saved_model", "tflite_float", "tflite_int8"}
    assert accuracy["saved_model"]["accuracy"] == pytest.approx(accuracy["keras"]["accuracy"], abs=1e-6)
    version = root / "serving" / "visionpipe" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert {p.name for p in (root / "serving").iterdir()} >= {"models.config", "batching.config", "visionpipe"}
    infra = first(root, "push") / "infra_blessing"
    assert (infra / "INFRA_BLESSED").is_file() and json.loads((infra / "infra_blessing.json").read_text())["blessed"]
    assert (root / "runs" / "1" / "config.yaml").is_file()


def test_second_run_is_fully_cached(project):
    again = project[-1]
    assert again.returncode == 0, again.stderr
    assert [stage_rows(again.stdout)[s][0] for s in STAGES] == ["cached"] * 6


def test_stage_reruns_only_that_stage(project):
    _, config, *_ = project
    train = visionpipe("run", "--config", str(config), "--stage", "train")
    assert train.returncode == 0, train.stderr
    assert list(stage_rows(train.stdout)) == ["train"] and stage_rows(train.stdout)["train"][0] == "succeeded"


def test_predict_with_saved_model_and_tflite(project):
    tmp, _, data, *_ = project
    images = [str(data / "red" / "img_000.png"), str(data / "blue" / "img_001.jpg")]
    for model in (
        tmp / "runs" / "serving" / "visionpipe",
        latest(tmp / "runs", "export") / "exported_model" / "tflite" / "model_int8.tflite",
    ):
        out = visionpipe("predict", "--model", str(model), "--json", *images)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert [r["image"] for r in result] == images
        assert all(len(r["top_k"]) == 3 and r["top_k"][0]["class"] in {"red", "green", "blue"} for r in result)


def test_runs_lists_stages(project):
    _, config, *_ = project
    out = visionpipe("runs", "--config", str(config))
    assert out.returncode == 0
    assert "cached=yes" in out.stdout and "train" in out.stdout and "succeeded" in out.stdout


def test_gate_stops_export_and_names_the_threshold(project):
    _, config, *_ = project
    out = visionpipe(
        "run", "--config", str(config), "--from", "evaluate", "--set", "evaluate.thresholds.min_accuracy=1.01"
    )
    assert out.returncode == 1
    rows = stage_rows(out.stdout)
    assert rows["evaluate"][0] == "succeeded" and rows["export"][0] == "refused" and rows["push"][0] == "not"
    assert "evaluate.thresholds.min_accuracy 1.01" in out.stderr and "Traceback" not in out.stderr


def interruptible_project(tmp_path: Path, epochs: int, *train_lines: str) -> Path:
    """A tiny project whose training runs all ``epochs`` (no early stopping), for a test to
    interrupt; ``train_lines`` are more ``train:`` settings."""
    config = tmp_path / "config.yaml"
    config.write_text(
        tiny_config_yaml(tmp_path / "runs", make_folder(tmp_path / "images"))
        .replace(f"  epochs: {TINY_EPOCHS}", f"  epochs: {epochs}")
        .replace("  verbose: 0", "\n".join(["  early_stopping_patience: 100", *train_lines]))
    )
    return config


def test_killed_mid_train_resumes_without_cleanup(tmp_path):
    config = interruptible_project(tmp_path, 10)
    command = [sys.executable, "-m", "visionpipe", "run", "--config", str(config)]
    killed = signal_on_line(command, " train     epoch 4/10: ", signal.SIGKILL, timeout=300, cwd=REPO)  # in epoch 5
    assert killed.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert list((tmp_path / "runs" / "artifacts" / "train").glob(".tmp-*")), "the killed stage left its temp dir"

    rerun = visionpipe("run", "--config", str(config))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = stage_rows(rerun.stdout)
    assert rows["ingest"][0] == "cached" and rows["validate"][0] == "cached"
    assert all(rows[s][0] == "succeeded" for s in STAGES[2:])
    assert not list((tmp_path / "runs" / "artifacts").glob("*/.tmp-*"))
    history = json.loads((latest(tmp_path / "runs", "train") / "model" / "history.json").read_text())
    assert len(history["val_loss"]) < 10, "training restarted from scratch instead of resuming"


def test_export_gates_keep_failing_files_from_push(project):
    tmp, config, *_ = project
    out = visionpipe("run", "--config", str(config), "--from", "evaluate", "--set",
                     "export.gates={tflite_int8: {max_size_kib: 1}}")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "export: tflite_int8 gate failed: size " in out.stdout
    pushed = json.loads((latest(tmp / "runs", "push") / "pushed_model" / "push.json").read_text())
    assert "tflite_int8" in pushed["not_pushed"]
    files = {p.name for p in Path(pushed["tflite"]).iterdir()}
    assert files == {"model_float.tflite", "labels.txt", "preprocessing.json"}

    refused = visionpipe("run", "--config", str(config), "--from", "export", "--set", "export.max_accuracy_drop=-1")
    assert refused.returncode == 1
    assert stage_rows(refused.stdout)["push"][0] == "refused"
    assert "the SavedModel failed its export gate (failed: accuracy drop 0.0000 > -1)" in refused.stderr


def test_sigterm_writes_a_backup_exits_75_and_the_rerun_resumes(tmp_path):
    # With the EMA of the weights on: its average is in the backup's optimizer state.
    config = interruptible_project(tmp_path, 5, "  backup_every_steps: 1", "  ema_epochs: 1")
    assert visionpipe("run", "--config", str(config), "--stage", "ingest").returncode == 0
    assert visionpipe("run", "--config", str(config), "--stage", "validate").returncode == 0
    command = [sys.executable, "-m", "visionpipe", "run", "--config", str(config), "--stage", "train"]
    preempted = signal_on_line(command, " train     epoch 2/5: ", signal.SIGTERM, timeout=120, cwd=REPO)
    assert preempted.returncode == 75, preempted.stdout[-2000:]
    assert "preempted (SIGTERM) in epoch" in preempted.stdout and "backup written" in preempted.stdout

    rerun = visionpipe("run", "--config", str(config), "--stage", "train")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert " train     epoch 1/5: " not in rerun.stdout and " train     epoch 5/5: " in rerun.stdout
    history = json.loads((latest(tmp_path / "runs", "train") / "model" / "history.json").read_text())
    assert 1 <= len(history["loss"]) <= 3  # resumed at epoch 3 or 4, not from the start
    assert len(history["raw_val_loss"]) == len(history["val_loss"])  # the raw weights validated too
    assert "train: 5 epochs; kept the " in rerun.stdout and " weights of epoch " in rerun.stdout
