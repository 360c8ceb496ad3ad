"""The layers of ARCHITECTURE.md hold: import-linter's contracts (pyproject's
[tool.importlinter], also run by `make lint`) pass on the tree, and a wrong-way import added to
a copy of it breaks them, so the contracts can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the copy's visionpipe/ is found before the editable install's.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_tree_keeps_every_contract():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "wrong_way", "contract"),
    [
        ("pipeline/runner.py", "import visionpipe.components.train.spec", "Layers import only downward"),
        ("data/images.py", "import visionpipe.models.registry", "Layers import only downward"),
        ("serving/predict.py", "import visionpipe.cli", "Only the application"),
        ("components/push/spec.py", "import visionpipe.components.evaluate.spec", "Stages do not import each other"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, wrong_way, contract):
    copy = tmp_path / "tree"
    ignored = shutil.ignore_patterns(".venv*", ".git", "build", "*.egg-info", "__pycache__", "visionpipe_runs", "tests")
    shutil.copytree(REPO, copy, ignore=ignored, symlinks=True)
    path = copy / module
    path.write_text(path.read_text() + f"\n{wrong_way}  # added by the test\n")
    done = lint_imports(copy)
    assert done.returncode != 0
    assert contract in done.stdout and "BROKEN" in done.stdout, done.stdout
