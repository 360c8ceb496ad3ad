"""Bad inputs end in a clear message or anomaly report, never a traceback."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow


def test_corrupt_image_empty_class_and_stray_file_stop_at_validation(tmp_path):
    data = make_folder(tmp_path / "images")
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "red" / "empty.png").write_bytes(b"")
    (data / "green" / "notes.txt").write_text("not an image")
    (data / "purple").mkdir()
    os.symlink(tmp_path / "nowhere.jpg", data / "blue" / "dangling.jpg")
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))

    out = visionpipe("run", "--config", str(config))
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    rows = stage_rows(out.stdout)
    assert rows["ingest"][0] == "succeeded" and rows["validate"][0] == "succeeded"
    assert rows["train"][0] == "refused"
    assert "found 40 = ingested 36 + quarantined 4" in out.stdout
    assert "blocking anomalies" in out.stderr and "report.md" in out.stderr

    validate = max((tmp_path / "runs" / "artifacts" / "validate").iterdir(), key=lambda p: int(p.name))
    report = (validate / "anomalies" / "report.md").read_text()
    anomalies = {a["kind"]: a["items"] for a in json.loads((validate / "anomalies" / "anomalies.json").read_text())}
    assert anomalies["empty_class"] == ["purple"]
    bad = "\n".join(anomalies["undecodable_image"])
    assert "broken.jpg: cannot decode" in bad and "empty.png: empty file" in bad
    assert "notes.txt: unsupported file type '.txt'" in bad and "dangling.jpg: cannot read file" in bad
    assert "broken.jpg" in report and "purple" in report and "validate.severity.empty_class=warn" in report


def test_warn_severity_lets_the_pipeline_continue(tmp_path):
    data = make_folder(tmp_path / "images")
    (data / "red" / "broken.jpg").write_bytes(b"garbage")
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    out = visionpipe("run", "--config", str(config), "--stage", "ingest")
    assert out.returncode == 0
    out = visionpipe(
        "run", "--config", str(config), "--stage", "validate", "--set", "validate.severity.undecodable_image=warn"
    )
    assert out.returncode == 0 and "warning undecodable_image: 1" in out.stdout


def test_config_typo_is_a_clear_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  epoch: 3\n")
    out = visionpipe("run", "--config", str(config))
    assert out.returncode == 2
    assert "unknown config key 'train.epoch'" in out.stderr and "epochs" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_data_folder_is_a_clear_error(tmp_path):
    out = visionpipe(
        "run",
        "--set",
        f"run.root={tmp_path / 'runs'}",
        "--set",
        "data.source=folder",
        "--set",
        f"data.path={tmp_path / 'nope'}",
    )
    assert out.returncode == 1
    assert "is not a folder" in out.stderr and "Traceback" not in out.stderr


def test_unknown_stage_is_a_clear_error(tmp_path):
    out = visionpipe("run", "--set", f"run.root={tmp_path}", "--stage", "trian")
    assert out.returncode == 2 and "unknown stage 'trian'; stages are: ingest, validate" in out.stderr
