"""Every test starts from the same process-wide state, whatever ran before it, and leaves none
of its own behind.

Before each test: the seeds (Python, NumPy, TensorFlow, Keras) are set to the run's seed, the
one pytest-randomly prints at the top (replay a run with ``--randomly-seed=N``; 0 without
pytest-randomly), so what a test draws depends on that seed and nothing else. After it: the
Keras settings (dtype policy, floatx, seeds), TensorFlow's op determinism and eager mode, the
environment variables, the working directory and the TensorFlow logger's level are put back as
they were. conftest.py imports the fixture; tests/test_hermetic.py shows the leak it closes.
"""

from __future__ import annotations

import logging
import os

import keras
import pytest
import tensorflow as tf

from visionpipe.components.common import process_state


def run_seed(config: pytest.Config) -> int:
    """The seed of this pytest run: pytest-randomly's when it is installed and on."""
    seed = getattr(config.option, "randomly_seed", None)
    return seed if isinstance(seed, int) else 0


@pytest.fixture(autouse=True)
def hermetic_globals(request):
    saved = process_state.snapshot()
    environment, cwd = dict(os.environ), os.getcwd()
    tf_logger_level = logging.getLogger("tensorflow").level
    eager = tf.config.functions_run_eagerly()
    keras.utils.set_random_seed(run_seed(request.config) % 2**32)
    yield
    process_state.restore(saved)
    if dict(os.environ) != environment:
        os.environ.clear()
        os.environ.update(environment)
    os.chdir(cwd)
    logging.getLogger("tensorflow").setLevel(tf_logger_level)
    tf.config.run_functions_eagerly(eager)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The run's seed on the first line, even under -q (which hides pytest-randomly's header)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(_order(session.config))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The seed again under the results, beside any failure, to replay the same order."""
    terminalreporter.write_line(_order(config))


def _order(config: pytest.Config) -> str:
    if getattr(config.option, "randomly_seed", None) is None:
        return "pytest-randomly is off: tests in file order, seeds 0"
    return f"random order and seeds; replay with: pytest --randomly-seed={run_seed(config)}"
