"""Fingerprints that decide whether a stage can be served from cache.

A stage's fingerprint is a hash of its name, its params, its input artifacts' fingerprints,
whatever it reads from outside the store, and the version of the code it runs: the project
files its executor imports, found by reading their imports (``stage_code_version``), so an
edit reruns the stages that run the edited file and the ones downstream of them only. Params
that cannot change an output (verbosity, experiment tracking) are marked ``OUTSIDE_KEY`` and
left out. An output artifact's
fingerprint also includes the execution that produced it, so a forced rerun of a stage
(which may produce different weights) makes every downstream stage run again.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

# The project's package folders; visionpipe/ holds the application and a symlink to each other
# folder, which rglob does not follow, so no file is hashed twice.
_PACKAGES = ("pipeline", "data", "components", "models", "serving", "visionpipe")
_ROOT = Path(__file__).resolve().parent.parent
# A project module named in a string: a lazily loaded executor ("pkg.module:function") or a
# subprocess's ``python -m pkg.module``. Its code is part of what the stage runs.
_MODULE_NAME = re.compile(r"^visionpipe(?:\.\w+)+(?::\w+)?$")

# Dataclass field metadata for a param that cannot change an output (how much is printed,
# where metrics are also logged): changing it reruns nothing.
OUTSIDE_KEY = {"cache_key": False}


def digest(value: Any) -> str:
    text = json.dumps(_keyed(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _keyed(value: Any) -> Any:
    """``value`` as plain data, without the dataclass fields marked OUTSIDE_KEY."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _keyed(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("cache_key", True)
        }
    if isinstance(value, dict):
        return {str(k): _keyed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_keyed(v) for v in value]
    return value


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of every Python source file of the project's packages."""
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def stage_code_version(*modules: str) -> str:
    """Hash of the project files that ``modules`` (``visionpipe.…`` names) import, directly or
    through each other, lazily inside functions included."""
    files = _project_files(modules)
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(_ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _project_files(modules: tuple[str, ...]) -> set[Path]:
    seen: set[Path] = set()
    todo = [m for name in modules for m in _files_of(name)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
                names = [node.value.partition(":")[0]]
            todo += [f for name in names for f in _files_of(name)]
    return seen


def _run_time_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:``: an import only the type
    checker follows (a stage naming the application's Config) runs no code."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo += child.orelse
            else:
                todo.append(child)


def _files_of(module: str) -> list[Path]:
    """The project files that importing ``module`` runs: the module and its packages' __init__."""
    parts = module.split(".")
    if parts[0] != "visionpipe":
        return []
    package = _ROOT / "visionpipe"  # the application's modules, and a symlink to each layer's folder
    folder = package.joinpath(*parts[1:])
    found = [p for p in (folder.with_suffix(".py"), folder / "__init__.py") if p.is_file()]
    # visionpipe/__init__.py (the public API, which imports the whole graph) is left out: every
    # import of a layer runs it, and counting it would make every stage depend on every file.
    packages = [package.joinpath(*parts[1:i], "__init__.py") for i in range(2, len(parts))]
    # Resolved: a file is named by where it lives (components/…, not visionpipe/components/…).
    return [p.resolve() for p in found + [p for p in packages if p.is_file()]] if found else []


def stage_fingerprint(stage: str, params: Any, input_fingerprints: dict[str, str], external: str, code: str) -> str:
    """``code``: the stage's ``stage_code_version``."""
    return digest({"stage": stage, "params": params, "inputs": input_fingerprints, "external": external, "code": code})


def artifact_fingerprint(stage_fp: str, execution_id: int, output_name: str) -> str:
    return digest([stage_fp, execution_id, output_name])
