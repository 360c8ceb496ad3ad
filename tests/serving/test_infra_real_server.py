"""Infra validation against a real TF Serving: runs where ``tensorflow_model_server`` is on
PATH or a Docker daemon with the tensorflow/serving image answers; skipped otherwise, with
the reason (this machine has neither: TF Serving has no pip or Debian package)."""

from __future__ import annotations

import pytest

from tests.serving.push_fixtures import export_tiny, make_examples, push_config
from visionpipe.components.push.executor import push_version
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
    assert {c["check"]: c["status"] for c in result.verdict.checks}["real server"] == "passed"
