"""Canary and promote through the CLI on a tiny project: a canary push via --set, the runs
table, then `visionpipe promote --config` moving stable, as a user would do it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe
from visionpipe.serving.tf_serving_config import entry_named, read_models_config

pytestmark = pytest.mark.slow


def test_canary_push_and_promote_through_the_cli(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", make_folder(tmp_path / "images")) + "push:\n  canary: true\n")
    first = visionpipe("run", "--config", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    second = visionpipe("run", "--config", str(config), "--stage", "push", "--set", "push.warmup_requests=2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert stage_rows(second.stdout)["push"][0] == "succeeded"
    assert "canary -> 2, stable stays at 1" in second.stdout
    destination = tmp_path / "runs" / "serving"
    entry = entry_named(read_models_config(destination / "models.config"), "visionpipe")
    assert entry.versions == (1, 2) and dict(entry.labels) == {"stable": 1, "canary": 2}
    assert entry.base_path == str(destination.resolve() / "visionpipe")

    promoted = visionpipe("promote", "--config", str(config))
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("visionpipe: stable 1 -> 2; canary label removed")
    entry = entry_named(read_models_config(destination / "models.config"), "visionpipe")
    assert entry.versions == (2,) and dict(entry.labels) == {"stable": 2}
    record = json.loads((destination / "visionpipe" / "2" / "assets.extra" / "visionpipe_version.json").read_text())
    assert record["infra"]["status"] == "INFRA_BLESSED" and 0 <= record["accuracy"] <= 1
