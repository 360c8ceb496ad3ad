"""A TF Serving model base path on disk: numbered version folders that appear whole.

TF Serving polls ``<base>/`` and loads any folder whose name is an integer, so a version is
assembled in a hidden ``.staging-*`` folder beside it (the server ignores names that are not
numbers) and renamed into place in one step, and an old one is renamed aside before it is
deleted. A lock file in the destination keeps two pushes (or a push and a promote) from
picking the same number or rewriting models.config at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STAGING_PREFIX = ".staging-"
LOCK_FILE = ".push.lock"
VERSION_RECORD = "visionpipe_version.json"  # in assets.extra/: what push knew about the version


def versions(base: Path) -> list[int]:
    """The version numbers under ``base``, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base: Path) -> int:
    return max(versions(base), default=0) + 1


@contextlib.contextmanager
def destination_lock(destination: Path) -> Iterator[None]:
    """Held while a push or promote changes the destination; waits for another holder."""
    destination.mkdir(parents=True, exist_ok=True)
    with open(destination / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_staging(base: Path) -> list[Path]:
    """Staging folders left by a push that died; call with the lock held (no live push owns one)."""
    stale = sorted(base.glob(f"{STAGING_PREFIX}*")) if base.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def staging_dir(base: Path, version: int) -> Path:
    return base / f"{STAGING_PREFIX}{version}-{os.getpid()}"


def publish(staged: Path, base: Path, version: int) -> Path:
    """Renames the staged folder to ``<base>/<version>``; never replaces an existing version."""
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"version {version} already exists under {base}; versions are never overwritten")
    os.rename(staged, target)  # atomic on one file system; fails rather than merge into a folder
    return target


def prune(base: Path, keep: int, protected: set[int]) -> list[int]:
    """Deletes all but the newest ``keep`` versions, sparing ``protected`` (those a label or
    the version policy names); returns the deleted numbers."""
    deleted = []
    for version in versions(base)[:-keep]:
        if version in protected:
            continue
        aside = base / f"{STAGING_PREFIX}deleting-{version}-{os.getpid()}"
        os.rename(base / str(version), aside)  # gone for the server at once, then deleted
        shutil.rmtree(aside)
        deleted.append(version)
    return deleted


def record_path(version_dir: Path) -> Path:
    return version_dir / "assets.extra" / VERSION_RECORD


def write_record(version_dir: Path, record: dict[str, Any]) -> None:
    path = record_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def read_record(version_dir: Path) -> dict[str, Any] | None:
    """The push record of a version (its infra verdict, accuracy), or None if it has none."""
    path = record_path(version_dir)
    return json.loads(path.read_text()) if path.is_file() else None
