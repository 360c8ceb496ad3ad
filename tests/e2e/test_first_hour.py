"""What a new user meets in the first hour, through the real CLI: the folder layouts people
have (train/ + val/, train/ + test/), a two-class task, an image filed under two classes,
a console with visionpipe's lines only (the libraries' logs in the run's log file), and an
unexpected error shown as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import COLORS, TINY_EPOCHS, make_image, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe
from visionpipe.graph import stage_names

pytestmark = pytest.mark.slow

OUR_LINE = re.compile(
    r"^(\[\d\d:\d\d:\d\d\] \S+ +.+"  # a visionpipe log line
    r"|run \d+ under .+|stage +status.+|[- ]+|\S+ +(succeeded|cached|failed|refused|not run).*"  # the table
    rf"|({'|'.join(stage_names())}): .+"  # its notes
    r"|full log \(libraries included\): .+|report: .+|error: .+)$"
)
NOISE = ("WARNING", "I0000", "absl", "apitools", "oneDNN", "cuda", "sdk_worker", "Traceback")
# TensorFlow's own start-up lines: which of them it prints depends on the CPU (oneDNN's note
# only where oneDNN's optimisations are on by default, e.g. with AVX-512; an AVX2-only host
# prints the CPU feature guard's) and on whether CUDA is there.
TF_OWN = ("oneDNN", "cpu_feature_guard", "cudart_stub")


def make_layout(root: Path, per_split: dict[str, int], classes=("red", "blue")) -> Path:
    for s, (split, n) in enumerate(per_split.items()):
        for c, name in enumerate(classes):
            for i in range(n):
                seed = 10_000 * s + 1_000 * c + i
                make_image(root / split / name / f"{split}_{i:03d}.png", (24 + i % 9, 24), COLORS[name], seed)
    return root


def latest(root: Path, stage: str) -> Path:
    return max((root / "artifacts" / stage).iterdir(), key=lambda p: int(p.name))


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory):
    """A two-class train/ + val/ folder (no test/), one image filed under both classes."""
    tmp = tmp_path_factory.mktemp("first_hour")
    data = make_layout(tmp / "photos", {"train": 20, "val": 4})
    (data / "train" / "blue" / "also_red.png").write_bytes((data / "train" / "red" / "train_000.png").read_bytes())
    config = tmp / "config.yaml"
    config.write_text(tiny_config_yaml(tmp / "runs", data))
    return tmp, config, visionpipe("run", "--config", str(config))


def test_two_class_train_val_folder_runs_end_to_end_with_a_carved_test_split(two_classes):
    tmp, _, out = two_classes
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(row[0] == "succeeded" for row in stage_rows(out.stdout).values())
    assert (
        "ingest: splits: train 35 as given; val 8 as given; test 4 carved out of the given train images" in out.stdout
    )
    metrics = json.loads((latest(tmp / "runs", "evaluate") / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["examples"] == 4 and "top_k" not in metrics
    assert set(metrics["per_class"]) == {"red", "blue"}
    assert re.search(
        r"evaluate: test accuracy \d\.\d{4} \(95% CI \d\.\d{4}-\d\.\d{4}, width \d\.\d{4}\), "
        r"macro F1 \d\.\d{4} on 4 images",
        out.stdout,
    )
    assert "evaluate: per class, precision/recall/F1 (images): blue " in out.stdout
    assert "evaluate: gate: BLESSED" in out.stdout
    predicted = visionpipe(
        "predict",
        "--model",
        str(tmp / "runs" / "serving" / "visionpipe"),
        "--json",
        str(tmp / "photos" / "val" / "red" / "val_000.png"),
    )
    assert predicted.returncode == 0 and len(json.loads(predicted.stdout)[0]["top_k"]) == 2


def test_an_image_under_two_classes_is_quarantined_everywhere_and_only_warned_about(two_classes):
    tmp, _, out = two_classes
    quarantine = [
        json.loads(line)
        for line in (latest(tmp / "runs", "ingest") / "examples" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert sorted(Path(q["path"]).name for q in quarantine) == ["also_red.png", "train_000.png"]
    assert all(q["anomaly"] == "conflicting_labels" and "filed under blue and red" in q["reason"] for q in quarantine)
    assert "found 49 = ingested 47 + quarantined 2" in out.stdout
    assert "warning conflicting_labels: 1" in out.stdout
    report = (latest(tmp / "runs", "validate") / "anomalies" / "report.md").read_text()
    assert "A warning: the pipeline continues" in report and "to continue anyway" not in report


def test_the_console_shows_visionpipe_only_and_the_log_file_has_everything(two_classes):
    _, _, out = two_classes
    console = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert [line for line in console if not OUR_LINE.match(line)] == []
    assert not [marker for marker in NOISE if marker in out.stdout + out.stderr]
    log = Path(re.search(r"full log \(libraries included\): (\S+)", out.stdout).group(1))
    text = log.read_text()
    assert "apitools" in text and any(m in text for m in TF_OWN)  # Beam's and TensorFlow's own lines
    assert "] evaluate  gate: BLESSED" in text  # and visionpipe's


def test_verbose_brings_the_library_logs_back(two_classes):
    _, config, _ = two_classes
    out = visionpipe("run", "--config", str(config), "--stage", "evaluate", "--verbose")
    assert out.returncode == 0 and any(m in out.stdout + out.stderr for m in TF_OWN), out.stdout + out.stderr


def test_an_unexpected_error_is_one_line_with_the_traceback_on_file(two_classes):
    tmp, config, _ = two_classes
    model = latest(tmp / "runs", "train") / "model" / "model.keras"
    intact = model.read_bytes()
    model.write_bytes(b"not a model")
    try:
        out = visionpipe("run", "--config", str(config), "--stage", "evaluate")
    finally:  # the module's other tests read this model, in any order
        model.write_bytes(intact)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    match = re.search(r"error: stage evaluate failed: (\w+): .+ \(unexpected; full traceback in (\S+)\)", out.stderr)
    assert match, out.stderr
    assert "Traceback (most recent call last)" in Path(match.group(2)).read_text()


def test_train_test_layout_carves_val_and_scores_the_whole_given_test_split(tmp_path):
    data = make_layout(tmp_path / "cifar_like", {"train": 20, "test": 5})
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    out = visionpipe("run", "--config", str(config), "--stage", "ingest")
    assert out.returncode == 0, out.stderr
    assert (
        "train 36 as given; val 4 carved out of the given train images (11% of them, stratified); test 10 as given"
        in out.stdout
    )


def test_absent_splits_train_without_val_and_evaluate_on_val(tmp_path):
    no_val = make_layout(tmp_path / "no_val", {"train": 12, "test": 4})
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", no_val))
    out = visionpipe("run", "--config", str(config), "--set", "data.split.val=0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "val 0 absent (data.split.val is 0)" in out.stdout
    assert f"no val split: all {TINY_EPOCHS} epochs run without early stopping" in out.stdout
    last = f"train: {TINY_EPOCHS} epochs; kept the model of epoch {TINY_EPOCHS} (the last: there is no val split)"
    assert last in out.stdout

    no_test = make_layout(tmp_path / "no_test", {"train": 12, "val": 4})
    config.write_text(tiny_config_yaml(tmp_path / "runs2", no_test))
    out = visionpipe("run", "--config", str(config), "--set", "data.split.test=0", "--stage", "ingest")
    assert out.returncode == 0 and "test 0 absent (data.split.test is 0)" in out.stdout
    for stage in ("validate", "train", "evaluate"):
        out = visionpipe("run", "--config", str(config), "--set", "data.split.test=0", "--stage", stage)
        assert out.returncode == 0, out.stdout + out.stderr
    assert "evaluate: val accuracy" in out.stdout and "(there is no test split)" in out.stdout
