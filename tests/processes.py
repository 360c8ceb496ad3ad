"""Local processes for the distributed and serving tests: free ports on 127.0.0.1, running
several processes at once under one timeout, and a server in the background; each kills only
what the test started if it hangs."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import time


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 (all held open together so none repeats)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_together(
    commands: dict[str, list[str]], timeout: int, envs: dict[str, dict] | None = None, cwd=None
) -> dict[str, subprocess.CompletedProcess]:
    """Starts every command and waits for all (stdout and stderr merged) within one ``timeout``
    for the lot, reading every output as it comes (a process blocked on a full pipe would hang
    the others it works with). At the timeout it kills the process group of each one still
    running (only what this test started) and fails with every process's output, so the one
    that hung, and why, shows."""
    procs: dict = {}
    outputs: dict = {}
    deadline = time.monotonic() + timeout
    try:
        for name, command in commands.items():
            procs[name] = subprocess.Popen(
                command,
                cwd=cwd,
                env=(envs or {}).get(name),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        readers = [
            threading.Thread(target=lambda n=name, p=proc: outputs.__setitem__(n, p.communicate()[0]), daemon=True)
            for name, proc in procs.items()
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(max(deadline - time.monotonic(), 0))
        # Still reading (a process that exits at the deadline may not have handed over its output).
        running = [name for name, reader in zip(procs, readers, strict=True) if reader.is_alive()]
        if running:
            _kill(procs.values())
            for reader in readers:
                reader.join(30)
            told = "\n".join(
                f"--- {name} (exit {proc.returncode}):\n{outputs.get(name)}" for name, proc in procs.items()
            )
            raise AssertionError(f"still running after {timeout} s: {', '.join(map(str, running))}\n{told}")
    finally:
        _kill(procs.values())
    return {
        name: subprocess.CompletedProcess(proc.args, proc.returncode, outputs[name]) for name, proc in procs.items()
    }


def _kill(procs) -> None:
    for proc in procs:  # stop only what this test started
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def signal_on_line(
    command: list[str], marker: str, sig: signal.Signals, timeout: int, cwd=None
) -> subprocess.CompletedProcess:
    """Runs ``command`` and sends ``sig`` to its process group when a line of its output (stdout
    and stderr merged) contains ``marker``, once; returns the exit code and the whole output."""
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines, sent = [], False
    try:
        for line in proc.stdout:
            lines.append(line)
            if not sent and marker in line:
                os.killpg(proc.pid, sig)
                sent = True
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:  # stop only what this test started
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, proc.returncode, "".join(lines))


class Background:
    """A command (a server) in its own process group, its output read as it comes; every wait
    is bounded, and stop() ends only what it started."""

    def __init__(self, command: list[str], cwd=None, env: dict | None = None):
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        """The first line from now on that holds ``marker``."""
        try:
            while True:
                line = self.lines.get(timeout=timeout)
                self.output.append(line)
                if marker in line:
                    return line
        except queue.Empty:
            raise AssertionError(f"no {marker!r} in {timeout} s: {''.join(self.output)}") from None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode
