"""Export's per-file gates: each row holds a ``pipeline.checks.Check`` record, the table and the
stage's notes read as they did ("passed", "failed: <reasons>"), and the ExportedModel lists the
failed ones for push."""

from __future__ import annotations

import dataclasses
import json

from visionpipe.components.export.config import ArtifactGate, ExportConfig
from visionpipe.components.export.executor import _record
from visionpipe.components.export.gates import check_gates, gate_of, table
from visionpipe.pipeline.artifacts import ExportedModel
from visionpipe.pipeline.checks import Check, Outcome


class Ctx:
    def __init__(self):
        self.lines = []

    def log(self, line: str) -> None:
        self.lines.append(line)


def rows() -> dict[str, dict]:
    return {
        "keras": {"accuracy": 0.9},
        "saved_model": {"accuracy": 0.9, "size_bytes": 10_000},
        "tflite_float": {"accuracy": 0.895, "size_bytes": 4_000},
        "tflite_int8": {"accuracy": 0.85, "size_bytes": 2_048_000},
        "tflite_prune_int8": {"gate": Check("tflite_prune_int8", Outcome.FAILED, "not made: timeout").as_dict()},
        "tflite_channels_int8": {"accuracy": 0.895, "size_bytes": 1_024},
    }


def test_each_file_gets_a_check_and_the_table_reads_as_before():
    results = rows()
    config = dataclasses.replace(ExportConfig(), gates={"tflite_int8": ArtifactGate(max_size_kib=1000)})
    check_gates(results, config)
    assert "gate" not in results["keras"]  # the reference
    assert gate_of("saved_model", results["saved_model"]) == Check("saved_model", Outcome.PASSED)
    assert gate_of("tflite_float", results["tflite_float"]).outcome is Outcome.PASSED  # drop 0.005 <= 0.01
    assert gate_of("tflite_int8", results["tflite_int8"]) == Check(
        "tflite_int8", Outcome.FAILED, "accuracy drop 0.0500 > 0.01; size 2000 KiB > 1000 KiB"
    )
    assert json.loads(json.dumps(results)) == results  # the records are plain JSON
    lines = table(results, "test").splitlines()
    assert lines[2].endswith("| - |") and lines[3].endswith("| passed |")
    assert lines[5].endswith("| failed: accuracy drop 0.0500 > 0.01; size 2000 KiB > 1000 KiB |")
    assert lines[6].endswith("| failed: not made: timeout |")
    # Whether a file's pruning makes it faster, or only smaller (BENCHMARKS.md measured both).
    assert "| zeros stored, computed anyway by XNNPACK: smaller gzipped, not faster |" in lines[6]
    assert "| filters removed: fewer multiply-accumulates, faster |" in lines[7]
    assert "| - |" in lines[4]  # tflite_int8: no pruning


def test_a_row_written_before_records_reads_alike():
    old = {"accuracy": 0.85, "gate": "failed: accuracy drop 0.0500 > 0.01"}
    assert gate_of("tflite_int8", old) == Check("tflite_int8", Outcome.FAILED, "accuracy drop 0.0500 > 0.01")
    assert table({"tflite_int8": old}, "test").splitlines()[2].endswith("| failed: accuracy drop 0.0500 > 0.01 |")


def test_the_failed_gates_are_recorded_for_push_and_said_in_the_notes(tmp_path):
    results = rows()
    check_gates(results, ExportConfig())
    exported = ExportedModel(str(tmp_path))
    summary = _record(exported, results, {}, ExportConfig(), "test", Ctx())
    assert exported.failed_gates == {
        "tflite_int8": Check("tflite_int8", Outcome.FAILED, "accuracy drop 0.0500 > 0.01"),
        "tflite_prune_int8": Check("tflite_prune_int8", Outcome.FAILED, "not made: timeout"),
    }
    assert exported.properties["passed"] == ["saved_model", "tflite_float", "tflite_channels_int8"]
    assert "tflite_int8 gate failed: accuracy drop 0.0500 > 0.01" in summary["notes"]
    assert "tflite_prune_int8 gate failed: not made: timeout" in summary["notes"]
    stored = json.loads((tmp_path / "artifacts.json").read_text())
    assert Check.from_dict(stored["tflite_int8"]["gate"]) == exported.failed_gates["tflite_int8"]
