"""The export stage's side of the tfmot bridge process: progress lines become progress, the
rest is the log, and a bridge that outlives its timeout is stopped and reported as such."""

from __future__ import annotations

import contextlib
import sys
import time

from visionpipe.components.export.compression import PROGRESS_PREFIX, _run_bridge


class Recorder:
    """Stands in for a progress tracker: keeps every update."""

    def __init__(self):
        self.updates = []

    def update(self, done: int, **fields: str) -> None:
        self.updates.append((done, fields))


def bridge(script: str) -> list[str]:
    return [sys.executable, "-c", f"PREFIX = {PROGRESS_PREFIX!r}\n{script}"]


def test_progress_lines_drive_the_tracker_and_everything_else_is_kept_as_the_log():
    recorder = Recorder()
    script = (
        "import sys\n"
        "for done in (10, 20, 30): print(f'{PREFIX}{done} 0.{done}', flush=True)\n"
        "print('converted'); print('oops', file=sys.stderr); sys.exit(3)"
    )
    returncode, output = _run_bridge(bridge(script), {}, timeout=60, progress=contextlib.nullcontext(recorder))
    assert returncode == 3
    assert output.splitlines() == ["converted", "oops"]
    assert recorder.updates == [(10, {"loss": "0.10"}), (20, {"loss": "0.20"}), (30, {"loss": "0.30"})]


def test_a_bridge_past_its_timeout_is_stopped_and_reported():
    started = time.monotonic()
    script = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    returncode, output = _run_bridge(bridge(script), {}, timeout=2, progress=contextlib.nullcontext(Recorder()))
    assert returncode is None
    assert output == "started\n"
    assert time.monotonic() - started < 30
