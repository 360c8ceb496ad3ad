"""The tfmot bridge's tf_keras twin fine-tunes as the trained model trained: its BatchNorm
layers keep the trained model's momentum and frozen state (a transfer-learned MobileNetV3 lost
9 points under QAT when the twin's frozen BatchNorm trained on batch statistics)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np

from visionpipe.models.classifier import batch_norm_states, build_classifier, network_of
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec

SPEC = PreprocessingSpec(16, 16, 3, "pad", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
TWIN_STATES = """
import json, sys
from visionpipe.components.export.tfmot_bridge import twin
from visionpipe.models.classifier import batch_norm_states
_, network, _ = twin(json.load(open(sys.argv[1])))
print(json.dumps(batch_norm_states(network)))
"""


def test_the_twin_keeps_the_trained_batchnorm_momentum_and_frozen_layers(tmp_path):
    model = ModelConfig(name="small_cnn", args={"width": 4})
    network = network_of(build_classifier(SPEC, 3, model))
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    norms[0].trainable = False  # frozen, as a transfer-learned backbone's are
    norms[-1].momentum = 0.999  # changed after the builder, as applications.py does
    trained = batch_norm_states(network)
    np.savez(tmp_path / "weights.npz", **{f"w{i}": np.asarray(w) for i, w in enumerate(network.weights)})
    job = {"model": model.name, "args": model.args, "spec": dataclasses.asdict(SPEC), "num_classes": 3,
           "weights": str(tmp_path / "weights.npz"), "batch_norm": trained}  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run(
        [sys.executable, "-c", TWIN_STATES, str(tmp_path / "job.json")], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == trained
    assert trained[0]["trainable"] is False and trained[-1]["momentum"] == 0.999 and len(trained) >= 3
