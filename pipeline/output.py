"""Where a run's messages go: visionpipe's own lines and live progress on the console, and
everything, the libraries' logs included, in the run's log file.

``Output.capture(log_path)`` points the process's stdout and stderr file descriptors at the
log file, so whatever TensorFlow's C++ code, absl, Beam and Beam's worker processes print
lands there instead of on the console. The console keeps a duplicate of the original
descriptor, and only visionpipe's own lines (``log``) and progress (``progress``) go to it.
With ``verbose`` the captured output is copied to the console as well.

On a terminal, progress is a live bar (rich) with counts, rate and ETA; elsewhere (CI logs, a
pipe, a notebook) it is an occasional plain line, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

PLAIN_AFTER_SECONDS = 10.0  # without a terminal, work this short prints no progress lines;
PLAIN_EVERY_SECONDS = 30.0  # longer work a line at least this often
PLAIN_EVERY_FRACTION = 0.25  # ... and at every quarter of the work


def stamp(stage: str, message: str) -> str:
    """A visionpipe log line: time, stage, message."""
    return f"[{time.strftime('%H:%M:%S')}] {stage:<9} {message}"


class Output:
    """The console and log file of one process; the CLI makes one, library code receives it."""

    def __init__(self, verbose: bool = False, capture_logs: bool = False, stream: IO[str] | None = None):
        self.verbose = verbose
        self.capture_logs = capture_logs  # the runner then keeps library output in the run's log
        self._stream = stream
        self._console = self._make_console(stream or sys.stdout)
        self._log: IO[bytes] | None = None
        self._live: Progress | None = None
        self._lock = threading.Lock()
        self.log_path: Path | None = None

    @staticmethod
    def _make_console(stream: IO[str]) -> Console:
        # A notebook gets plain lines too: live widgets would not survive a saved notebook.
        return Console(file=stream, force_jupyter=False, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return self._console.is_terminal

    def log(self, stage: str, message: str) -> None:
        """A line for the person running visionpipe (and the log file)."""
        line = stamp(stage, message)
        with self._lock:
            if self._live is not None:
                self._live.console.print(line, markup=False)
            else:
                self._console.print(line, markup=False)
            self._to_log(line + "\n")

    def detail(self, text: str) -> None:
        """Text for the log file only (shown on the console with ``verbose``), e.g. a traceback."""
        if self._log is None or self.verbose:
            print(text, file=sys.stderr, flush=True)
        if self._log is not None:
            self._to_log(text if text.endswith("\n") else text + "\n")

    def _to_log(self, text: str) -> None:
        if self._log is not None:
            self._log.write(text.encode())

    @contextlib.contextmanager
    def progress(self, stage: str, description: str, total: int | None, unit: str = "") -> Iterator[Tracker]:
        """Tracks ``total`` units of work (None: unknown); see ``Tracker``."""
        tracker = Tracker(self, stage, description, total, unit)
        if self.interactive:
            live = Progress(
                TextColumn(f"[{time.strftime('%H:%M:%S')}] {stage:<9} {description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=self._console,
                transient=True,
            )
            tracker.task = live.add_task(description, total=total, rate="", extra="")
            tracker.live = live
            with self._lock:
                self._live = live
            live.start()
        try:
            yield tracker
        finally:
            if tracker.live is not None:
                tracker.live.stop()
                with self._lock:
                    self._live = None

    @contextlib.contextmanager
    def capture(self, log_path: Path) -> Iterator[Path]:
        """Sends everything written to stdout/stderr by this process and its children to
        ``log_path`` (and, with ``verbose``, to the console too) until the block ends."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        console = os.fdopen(os.dup(1), "w", buffering=1)
        self._console = self._make_console(console)
        self._log = open(log_path, "ab", buffering=0)  # noqa: SIM115  (closed below)
        self.log_path = log_path
        tee = None
        if self.verbose:  # a pipe whose reader copies everything to the log and the console
            read_end, write_end = os.pipe()
            tee = threading.Thread(target=_copy, args=(read_end, self._log, saved[1]), daemon=True)
            tee.start()
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.close(write_end)
        else:
            os.dup2(self._log.fileno(), 1)
            os.dup2(self._log.fileno(), 2)
        try:
            yield log_path
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)  # closes the pipe's last write end: the tee thread sees EOF
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if tee is not None:
                tee.join(timeout=10)
            self._log.close()
            self._log = None
            self._console = self._make_console(self._stream or sys.stdout)
            console.close()


def _copy(read_end: int, log: IO[bytes], console_fd: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            log.write(chunk)
            os.write(console_fd, chunk)


@dataclasses.dataclass
class Tracker:
    """Progress of one piece of long work: ``advance(n, **fields)`` or ``update(done, ...)``;
    fields (e.g. ``loss="0.41"``) are shown after the counts."""

    output: Output
    stage: str
    description: str
    total: int | None
    unit: str
    done: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    live: Progress | None = None
    task: TaskID | None = None  # set with live
    _last_line: float = dataclasses.field(default_factory=time.monotonic)
    _last_fraction: float = 0.0

    def advance(self, n: int = 1, **fields: str) -> None:
        self.update(self.done + n, **fields)

    def update(self, done: int, **fields: str) -> None:
        self.done = done
        extra = "  ".join(f"{k} {v}" for k, v in fields.items())
        elapsed = time.monotonic() - self.started
        rate = f"{done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and done else ""
        if self.live is not None and self.task is not None:
            self.live.update(self.task, completed=done, rate=rate, extra=extra)
            return
        fraction = done / self.total if self.total else 0.0
        now = time.monotonic()
        due = now - self._last_line >= PLAIN_EVERY_SECONDS or fraction - self._last_fraction >= PLAIN_EVERY_FRACTION
        if due and elapsed >= PLAIN_AFTER_SECONDS and (not self.total or done < self.total):
            self._last_line, self._last_fraction = now, fraction
            self.output.log(self.stage, self.line(done, rate, extra))

    def line(self, done: int, rate: str, extra: str) -> str:
        count = f"{done:,}/{self.total:,}" if self.total else f"{done:,}"
        elapsed = time.monotonic() - self.started
        eta = ""
        if self.total and done:
            eta = f", ETA {_clock(elapsed * (self.total - done) / done)}"
        parts = [f"{self.description}: {count} {self.unit}".rstrip(), f"({rate}{eta})" if rate else "", extra]
        return " ".join(p for p in parts if p)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
