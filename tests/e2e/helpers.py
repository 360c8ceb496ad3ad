"""Runs the real ``visionpipe`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def visionpipe(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "visionpipe", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def stage_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table printed at the end of ``run``: stage -> [status, cached, seconds, ...]."""
    rows, in_table = {}, False
    for line in stdout.splitlines():
        if line.startswith("stage "):
            in_table = True
            continue
        if in_table and not line.strip():
            break  # the notes follow the table after a blank line
        if in_table and not line.startswith("-"):
            cells = line.split()
            rows[cells[0]] = cells[1:]
    return rows
