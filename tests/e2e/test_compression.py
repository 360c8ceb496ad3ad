"""Pruning and QAT of a Keras 3 model through the tfmot bridge, in the export stage: the
sparsity survives into the int8 file, and legacy Keras never reaches the main process."""

from __future__ import annotations

import json
import os
import sys

import pytest

import visionpipe as visionpipe_api
from tests.conftest import make_folder, tiny_config_yaml
from visionpipe.components.export.measure import tflite_sparsity

pytestmark = pytest.mark.slow

COMPRESSION = [
    "model.args={width: 32}",
    "export.compression.prune.enabled=true",
    "export.compression.prune.min_weights=0",
    "export.compression.prune.frequency=5",
    "export.compression.qat=true",
    "export.compression.preserve_sparsity=false",
    "export.compression.epochs=2",
    "export.compression.steps_per_epoch=20",
]


def test_prune_and_qat_files_are_made_scored_and_sparse_and_the_process_stays_on_keras_3(tmp_path):
    data = make_folder(tmp_path / "images", per_class=20)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", data))
    result = visionpipe_api.run_pipeline(visionpipe_api.load_config(config, COMPRESSION))  # in this process
    assert result.ok, result.failure()
    assert "TF_USE_LEGACY_KERAS" not in os.environ and "tensorflow_model_optimization" not in sys.modules
    export = max((tmp_path / "runs" / "artifacts" / "export").iterdir(), key=lambda p: int(p.name))
    tflite = export / "exported_model" / "tflite"
    results = json.loads((export / "exported_model" / "accuracy.json").read_text())
    assert {"tflite_prune_int8", "tflite_qat_int8"} <= set(results)
    pruned = tflite_sparsity(tflite / "model_pruned_int8.tflite")
    # The first convolution stays dense (432 of about 140,000 weights here).
    assert pruned == pytest.approx(0.75, abs=0.01)
    assert results["tflite_prune_int8"]["sparsity"] == pytest.approx(pruned, abs=1e-4)
    assert tflite_sparsity(tflite / "model_int8.tflite") < 0.05
    assert results["tflite_prune_int8"]["gzip_bytes"] < 0.6 * results["tflite_int8"]["gzip_bytes"]
    assert all(0 <= r["accuracy"] <= 1 for r in results.values())
