"""Local processes for the distributed tests: free ports on 127.0.0.1, and running several
processes at once under one timeout, killing only what the test started if they hang."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


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
    """Starts every command, waits for all (stdout and stderr merged), and kills the process
    group of any still running at the timeout or on an error."""
    procs = {}
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
        outputs = {name: proc.communicate(timeout=timeout)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():  # stop only what this test started
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return {
        name: subprocess.CompletedProcess(proc.args, proc.returncode, outputs[name]) for name, proc in procs.items()
    }


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
