"""Keras 3 fit under tf.distribute: the compatibility fixes make two local worker processes end
with the weights of single-process training at the same global batch, a canary fails once
Keras no longer needs the fixes, and MirroredStrategy over two logical CPU devices matches
single-device training unpatched; so does the recipe's EMA of the weights (train.ema_epochs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.processes import free_ports, run_together
from visionpipe.components.train import keras_compat

pytestmark = pytest.mark.slow
TASK = Path(__file__).with_name("multiworker_task.py")


def one_process(mode: str, out: Path, *ema: str) -> None:
    """``single`` (one device) or ``mirrored`` (two logical CPUs) training, weights to ``out``."""
    subprocess.run([sys.executable, str(TASK), mode, "0,0", "no", str(out), *ema], check=True, timeout=240,
                   capture_output=True)  # fmt: skip


def two_workers(tmp_path: Path, patch: bool, *ema: str) -> tuple[list[subprocess.CompletedProcess], Path]:
    ports, out = ",".join(map(str, free_ports(2))), tmp_path / "multi.npz"
    commands = {i: [sys.executable, str(TASK), str(i), ports, "patch" if patch else "no", str(out), *ema]
                for i in (0, 1)}  # fmt: skip
    done = run_together(commands, timeout=240)
    return [done[0], done[1]], out


def test_two_workers_match_single_process_training(tmp_path):
    single = tmp_path / "single.npz"
    one_process("single", single)
    done, multi = two_workers(tmp_path, patch=True)
    assert all(d.returncode == 0 for d in done), "\n".join(d.stdout[-2000:] for d in done)
    a, b = np.load(single), np.load(multi)
    for key in a.files:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_canary_keras_still_needs_the_fixes(tmp_path):
    """Fails once Keras multi-worker fit works unpatched: then drop keras_compat."""
    assert keras_compat.needed(), f"Keras {keras.__version__} is not listed in keras_compat.NEEDED_IN"
    done, _ = two_workers(tmp_path, patch=False)
    output = "\n".join(d.stdout for d in done)
    assert any(d.returncode != 0 for d in done), "multi-worker fit works without the fixes: remove keras_compat"
    assert "PerReplica" in output or "Invalid reduction dimension" in output, output[-2000:]


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
    runs = {}
    for mode in ("single", "mirrored"):
        runs[mode] = tmp_path / f"{mode}.npz"
        one_process(mode, runs[mode])
    a, b = np.load(runs["single"]), np.load(runs["mirrored"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
    for key in a.files:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_the_weight_average_is_the_same_on_one_device_two_logical_cpus_and_two_workers(tmp_path):
    single, mirrored = tmp_path / "single.npz", tmp_path / "mirrored.npz"
    one_process("single", single, "EMA")
    one_process("mirrored", mirrored, "EMA")
    done, multi = two_workers(tmp_path, True, "EMA")
    assert all(d.returncode == 0 for d in done), "\n".join(d.stdout[-2000:] for d in done)
    a = np.load(single)
    assert len(a.files) == 2 * 4 + 1  # the weights, their averages, the losses
    for other in (np.load(mirrored), np.load(multi)):
        for key in a.files:
            np.testing.assert_allclose(a[key], other[key], rtol=1e-4, atol=1e-5)
