"""The README's demo: the built-in dataset reaches the accuracy the product promises."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow


def test_demo_reaches_95_percent_and_int8_stays_within_one_point(tmp_path):
    out = visionpipe("run", "--config", "configs/demo.yaml", "--set", f"run.root={tmp_path}", timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert all(row[0] == "succeeded" for row in stage_rows(out.stdout).values())
    export = next((tmp_path / "artifacts" / "export").iterdir()) / "exported_model"
    accuracy = {k: v["accuracy"] for k, v in json.loads((export / "artifacts.json").read_text()).items()}
    assert accuracy["keras"] >= 0.95
    assert accuracy["saved_model"] == pytest.approx(accuracy["keras"], abs=1e-6)
    assert accuracy["keras"] - accuracy["tflite_int8"] <= 0.01
