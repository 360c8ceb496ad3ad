"""Infra validation against a real TF Serving: runs where ``tensorflow_model_server`` is on
PATH or a Docker daemon with the tensorflow/serving image answers; skipped otherwise, with
the reason (this machine has neither: TF Serving has no pip or Debian package). The check's
own code runs against stand-ins for the binary: the development server and one that fails."""

from __future__ import annotations

import os
import sys

import pytest

from tests.serving.push_fixtures import export_tiny, make_examples, push_config
from visionpipe.components.push.executor import InfraNotBlessed, push_version
from visionpipe.pipeline.checks import Outcome
from visionpipe.serving.infra_validation import real_server_command
from visionpipe.serving.warmup import warmup_images

COMMAND, WHY_NOT = real_server_command()


def test_without_a_real_server_the_check_is_skipped_with_the_reason():
    if COMMAND is None:
        assert "tensorflow_model_server" in WHY_NOT
    else:
        assert WHY_NOT == ""


@pytest.mark.skipif(COMMAND is None, reason=f"no real TF Serving to validate against: {WHY_NOT}")
def test_the_real_server_loads_and_serves_the_pushed_version(tmp_path):
    model = export_tiny(tmp_path / "export" / "1")
    images = warmup_images(make_examples(tmp_path / "examples"), 4)
    result = push_version(model, tmp_path / "serving", "visionpipe", images, push_config(), {})
    assert {c.name: c.outcome for c in result.verdict.checks}["real server"] is Outcome.PASSED


def shim(tmp_path, monkeypatch, body: str) -> None:
    """A ``tensorflow_model_server`` on PATH that runs ``body`` with the flags it is given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tensorflow_model_server").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "tensorflow_model_server").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def real_server_check(tmp_path):
    model = export_tiny(tmp_path / "export" / "1")
    images = warmup_images(make_examples(tmp_path / "examples"), 4)
    try:
        result = push_version(model, tmp_path / "serving", "visionpipe", images, push_config(), {})
    except InfraNotBlessed as refused:
        return refused.verdict.checks[-1]
    return result.verdict.checks[-1]


def test_the_real_server_check_against_the_development_server(tmp_path, monkeypatch):
    # `visionpipe serve` takes tensorflow_model_server's flags and answers its REST API: it
    # stands in for the binary, so the check's own code (start, wait for AVAILABLE, predict,
    # stop) runs here.
    shim(tmp_path, monkeypatch, f'exec {sys.executable} -m visionpipe serve "$@"')
    check = real_server_check(tmp_path)
    assert check.name == "real server" and check.outcome is Outcome.PASSED, check


def test_a_server_that_cannot_start_refuses_the_push(tmp_path, monkeypatch):
    shim(tmp_path, monkeypatch, 'echo "bad flag: $1" >&2; exit 3')
    check = real_server_check(tmp_path)
    assert check.outcome is Outcome.FAILED and "the server exited with code 3: bad flag: --port=" in check.detail
    assert not [p for p in (tmp_path / "serving" / "visionpipe").iterdir() if p.name.isdigit()]
