"""Fingerprints that decide whether a stage can be served from cache.

A stage's fingerprint is a hash of its name, its params, its input artifacts' fingerprints,
whatever it reads from outside the store, and the code version. An output artifact's
fingerprint also includes the execution that produced it, so a forced rerun of a stage
(which may produce different weights) makes every downstream stage run again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

_PACKAGES = ("pipeline", "components", "models", "serving")


def digest(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of every Python source file of the project's packages."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def stage_fingerprint(stage: str, params: Any, input_fingerprints: dict[str, str], external: str) -> str:
    return digest(
        {"stage": stage, "params": params, "inputs": input_fingerprints, "external": external, "code": code_version()}
    )


def artifact_fingerprint(stage_fp: str, execution_id: int, output_name: str) -> str:
    return digest([stage_fp, execution_id, output_name])
