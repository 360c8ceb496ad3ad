"""The quickstart notebook runs top to bottom (with a shorter training run)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.e2e.helpers import REPO

pytestmark = pytest.mark.slow


def test_quickstart_notebook_executes(tmp_path):
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = (
        f'ROOT = "{tmp_path / "runs"}"\nOVERRIDES = ["train.epochs=2", "evaluate.thresholds.min_accuracy=0.5"]'
    )
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    ).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "test accuracy" in outputs and "blessed: True" in outputs
    assert "model_int8.tflite" in outputs and "digit_3/" in outputs
