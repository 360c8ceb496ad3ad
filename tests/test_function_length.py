"""Functions a reader can hold (issue 21, point 6): no function in the project's packages is
longer than about 60 lines. benchmarks/ and tests/ are scripts and checks, not library code,
so they are not walked."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from tests.e2e.helpers import REPO

PACKAGES = ("pipeline", "components", "models", "serving", "visionpipe", "data")
MAX_LINES = 60


def _python_files(root: Path) -> list[Path]:
    """The .py files under ``root``, walking real directories only: a package folder may also
    be reachable through a symlink (visionpipe/<folder> -> ../<folder>), and counting it twice
    would name every long function twice."""
    files, seen = [], set()
    for top in PACKAGES:
        folder = root / top
        if not folder.is_dir() or folder.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False: symlinked dirs not entered
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
            for name in filenames:
                path = Path(dirpath) / name
                if name.endswith(".py") and not path.is_symlink() and path.resolve() not in seen:
                    seen.add(path.resolve())
                    files.append(path)
    return sorted(files)


def long_functions(root: Path, max_lines: int = MAX_LINES) -> list[str]:
    """``path:line name (N lines)`` for every function or method under ``root``'s packages
    longer than ``max_lines`` (measured as end_lineno - lineno + 1, decorators excluded)."""
    found = []
    for path in _python_files(root):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > max_lines:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_60_lines():
    too_long = long_functions(REPO)
    assert not too_long, "functions over 60 lines (split them into pieces with one job each):\n" + "\n".join(too_long)


def test_the_check_sees_a_long_function_and_walks_each_folder_once(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    (tmp_path / "visionpipe").mkdir()
    (tmp_path / "visionpipe" / "models").symlink_to(tmp_path / "models", target_is_directory=True)
    (tmp_path / "tests").mkdir()  # not a package folder: never walked
    (tmp_path / "tests" / "long.py").write_text(f"def long_test():\n{body}\n")
    assert long_functions(tmp_path) == [f"models{os.sep}long.py:1 long ({MAX_LINES + 1} lines)"]
