"""The hermetic fixture closes the leak between tests: a test that changes process-wide state
(dtype policy, seeds, op determinism, environment, working directory, TF log level) and a test
after it that needs the defaults, run in that order in a fresh pytest, both pass; without the
fixture the second fails. And a stage's own changes are undone by process_state."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import tensorflow as tf

from tests.conftest import REPO
from visionpipe.components.common import process_state

PAIR = """
import logging, os, random

import keras
import tensorflow as tf
from tensorflow.python.eager import context
from tensorflow.python.framework import config as tf_config

START = os.getcwd()


def test_1_leaves_global_state_behind(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(8)
    tf_config.enable_op_determinism()
    os.environ["VISIONPIPE_LEAKED"] = "1"
    os.chdir(tmp_path)
    logging.getLogger("tensorflow").setLevel(logging.CRITICAL)


def test_2_finds_the_defaults():
    assert keras.config.dtype_policy().name == "float32"
    assert context.global_seed() == 0 and random.random() == random.Random(0).random()
    assert not tf_config.is_op_determinism_enabled()
    assert "VISIONPIPE_LEAKED" not in os.environ
    assert os.getcwd() == START
    assert logging.getLogger("tensorflow").level != logging.CRITICAL
"""


def _run_pair(tmp_path, conftest: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "test_pair.py").write_text(PAIR)
    # In file order (-p no:randomly) so that the leaking test runs first.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(tmp_path)]
    env = {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_a_leaking_test_no_longer_breaks_the_next(tmp_path):
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    hermetic = _run_pair(tmp_path / "with", "from tests.hermetic import hermetic_globals  # noqa: F401\n")
    assert hermetic.returncode == 0, hermetic.stdout + hermetic.stderr
    assert "2 passed" in hermetic.stdout
    leaky = _run_pair(tmp_path / "without", "")
    assert leaky.returncode == 1 and "1 failed, 1 passed" in leaky.stdout, leaky.stdout


def test_a_stage_gives_back_the_settings_it_changed():
    before = process_state.snapshot()
    try:
        with process_state.restored_afterwards():
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
            keras.utils.set_random_seed(123)
            tf.config.experimental.enable_op_determinism()
            raise RuntimeError("the stage failed")
    except RuntimeError:
        pass
    after = process_state.snapshot()
    assert after.dtype_policy.name == before.dtype_policy.name == "float32"
    assert (after.keras_seed, after.tf_seed, after.op_determinism) == (before.keras_seed, before.tf_seed, False)
    assert str(after.numpy_random) == str(before.numpy_random)
