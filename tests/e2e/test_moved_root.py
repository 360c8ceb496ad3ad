"""A run root that can move (issue 25, item 5): the metadata store records artifact locations
relative to the root, so a root copied elsewhere reads only its own files, and an artifact
missing from it is a one-line error naming it."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import stage_rows, visionpipe

pytestmark = pytest.mark.slow


def test_a_copied_root_reruns_on_its_own_files_and_names_a_missing_artifact(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", make_folder(tmp_path / "images")))
    first = visionpipe("run", "--config", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    moved = tmp_path / "elsewhere" / "runs"
    shutil.copytree(tmp_path / "runs", moved, symlinks=True)
    shutil.rmtree(tmp_path / "runs")  # nothing of the original root is left to read by mistake
    with sqlite3.connect(moved / "metadata.sqlite") as db:
        locations = [uri for (uri,) in db.execute("SELECT uri FROM artifacts")]
    assert locations and all(uri.startswith("artifacts/") for uri in locations), locations

    again = visionpipe("run", "--config", str(config), "--set", f"run.root={moved}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {row[0] for row in stage_rows(again.stdout).values()} == {"cached"}  # the cache moved with the root

    rerun = visionpipe("run", "--config", str(config), "--set", f"run.root={moved}", "--from", "evaluate", "--force")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert stage_rows(rerun.stdout)["evaluate"][0] == "succeeded"
    assert str(tmp_path / "runs") + "/" not in rerun.stdout  # every path it printed is the copy's
    # push ran again in the copy: TF Serving's config names the copy's serving folder
    served = (moved / "serving" / "models.config").read_text()
    assert str(moved.resolve() / "serving") in served and str(tmp_path / "runs") + "/" not in served

    model = max((moved / "artifacts" / "train").iterdir(), key=lambda p: int(p.name)) / "model"
    shutil.rmtree(model)
    missing = visionpipe("run", "--config", str(config), "--set", f"run.root={moved}", "--from", "evaluate", "--force")
    assert missing.returncode != 0
    assert "Traceback" not in missing.stdout + missing.stderr
    said = [line for line in missing.stdout.splitlines() if "its files are gone" in line]
    assert len(said) >= 1 and str(model) in said[0] and "visionpipe run --from train" in said[0], missing.stdout
    runs = visionpipe("runs", "--config", str(config), "--set", f"run.root={moved}")
    assert runs.returncode == 0 and f"missing: model (Model) at {model}: its files are gone" in runs.stdout
