"""visionpipe gc (issue 25, item 4): it keeps what the retained runs, the next run and every
served version need, removes the rest, leaves the serving destination alone, refuses to run
beside a pipeline run, and a gc killed with SIGKILL leaves a store every command reads."""

from __future__ import annotations

import fcntl
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import REPO, visionpipe
from tests.processes import signal_on_line
from visionpipe import gc
from visionpipe.pipeline.artifacts import PushedModel
from visionpipe.pipeline.metadata import MetadataStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Run 1 serves version 1 (stable); runs 2 and 3 train models nothing uses; run 4 serves a
    different model as version 2 (canary)."""
    tmp = tmp_path_factory.mktemp("gc")
    config = tmp / "config.yaml"
    config.write_text(tiny_config_yaml(tmp / "runs", make_folder(tmp / "images")))
    canary = ("--set", "push.canary=true")
    for args in (
        canary,
        ("--stage", "train", "--set", "train.epochs=3"),
        ("--stage", "train", "--set", "train.epochs=4"),
        (*canary, "--set", "train.epochs=2", "--override-gate", "--reason", "a second version for the gc test"),
    ):
        done = visionpipe("run", "--config", str(config), *args)
        assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "runs", config


def _removed(runs: Path) -> dict[str, bool]:
    """Stored location -> marked removed, for every artifact."""
    with sqlite3.connect(runs / "metadata.sqlite") as db:
        return {uri: removed is not None for uri, removed in db.execute("SELECT uri, removed FROM artifacts")}


def test_gc_keeps_the_served_versions_and_what_runs_need_and_removes_the_rest(root, tmp_path):
    runs, config = root
    work = tmp_path / "runs"
    shutil.copytree(runs, work, symlinks=True)  # a root can move: this test's gc works on its own copy
    at = ("--config", str(config), "--set", f"run.root={work}")
    dry = visionpipe("gc", *at, "--keep-runs", "1", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "served versions (1 (stable), 2 (canary))" in dry.stdout and "dry run, nothing removed" in dry.stdout
    listed = {line.split()[3] for line in dry.stdout.splitlines() if line.startswith("  can go: ")}
    assert not any(_removed(work).values())
    newest = max((work / "artifacts" / "train").iterdir(), key=lambda p: int(p.name)) / "model"
    assert str(newest) not in listed  # run 4's model: served, and what the next run starts from
    assert sum(path.endswith("/model") and "/artifacts/train/" in path for path in listed) == 2, dry.stdout

    done = visionpipe("gc", *at, "--keep-runs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    removed = {str(work / uri) for uri, gone in _removed(work).items() if gone}
    assert removed == listed and not any(Path(p).exists() for p in removed)
    assert {p.name for p in (work / "serving" / "visionpipe").iterdir()} >= {"1", "2"}  # serving untouched
    store = MetadataStore(work / "metadata.sqlite")
    by_id = {a.id: a for a in store.artifacts()}
    pushed = {a.properties["version"]: a for a in by_id.values() if isinstance(a, PushedModel)}
    for version in (1, 2):  # each served version's lineage is still on disk
        lineage = {
            i for step in store.lineage(pushed[version].id) for i in (step["artifact_id"], *step["inputs"].values())
        }
        assert {by_id[i].TYPE for i in lineage} >= {"PushedModel", "ExportedModel", "Evaluation", "Model", "Examples"}
        assert all(by_id[i].path.exists() and not by_id[i].removed for i in lineage), version
    store.close()
    listing = visionpipe("runs", *at, "--disk")
    assert listing.returncode == 0 and "removed by visionpipe gc: model (Model)" in listing.stdout
    assert " MB at " in listing.stdout
    rerun = visionpipe("run", *at, "--set", "push.canary=true")  # run 1's settings: its kept artifacts serve
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    with open(work / ".lock", "w") as lock:  # a run holds the root
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = visionpipe("gc", *at)
    assert busy.returncode == 2 and "another visionpipe run is using" in busy.stderr


def test_a_gc_killed_midway_leaves_a_store_every_command_reads(root, tmp_path):
    runs, config = root
    work = tmp_path / "runs"
    shutil.copytree(runs, work, symlinks=True)
    at = ("--config", str(config), "--set", f"run.root={work}")
    command = [sys.executable, "-m", "visionpipe", "gc", *at, "--keep-runs", "0"]
    killed = signal_on_line(command, "removed ", signal.SIGKILL, timeout=120, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    _every_command_reads_the_store(work, at)


def test_a_gc_killed_between_marking_and_deleting_is_finished_by_the_next(root, tmp_path):
    """The state a SIGKILL right after gc's transaction leaves (the race above rarely lands there)."""
    runs, config = root
    work = tmp_path / "runs"
    shutil.copytree(runs, work, symlinks=True)
    at = ("--config", str(config), "--set", f"run.root={work}")
    store = MetadataStore(work / "metadata.sqlite")
    found = gc.plan(store, work / "serving", "visionpipe", keep_runs=0)
    store.mark_removed(a.id for a in found.removable)
    store.close()
    assert len(found.removable) == 2 and all(a.path.exists() for a in found.removable)
    listing = visionpipe("runs", *at)
    assert listing.stdout.count("removed by visionpipe gc: model (Model)") == 2
    finish = _every_command_reads_the_store(work, at)
    assert "finishing an interrupted gc: 2 artifacts already marked removed" in finish.stdout
    assert not any(a.path.exists() for a in found.removable)


def _every_command_reads_the_store(work: Path, at: tuple[str, ...]):
    listing = visionpipe("runs", *at)
    assert listing.returncode == 0 and "Traceback" not in listing.stdout + listing.stderr
    rerun = visionpipe("run", *at, "--set", "push.canary=true")  # reads the store; kept artifacts serve
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    finish = visionpipe("gc", *at, "--keep-runs", "0")
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert not any((work / uri).exists() for uri, gone in _removed(work).items() if gone)
    return finish
