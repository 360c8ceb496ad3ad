"""Infra validation: would TF Serving load and serve this staged version? (TFX's InfraValidator
idea, without the server binary, which cannot be installed here.)

Push calls ``validate`` on a version staged beside the base path, before it is renamed into
place. The checks, in order, each stopping the rest: the written ``models.config`` and
``batching.config`` parse with the real protos and obey TF Serving's rules; the warmup file
parses as PredictionLog records, as many as asked; a fresh Python process loads the
SavedModel and replays every warmup record and a REST body through the signature
(``infra_replay``), within a timeout. When ``tensorflow_model_server`` is on PATH, or a Docker
daemon with the ``tensorflow/serving`` image answers, the real server loads the version and
answers a REST predict too; otherwise that check is recorded as not checked, with the reason.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visionpipe.pipeline.checks import Check, Outcome, verdict
from visionpipe.serving import tf_serving_config as tfs
from visionpipe.serving.signature import IMAGE_INPUT, PROBABILITIES
from visionpipe.serving.warmup import read_warmup, warmup_path

SERVING_IMAGE = "tensorflow/serving:2.19.0"  # the tag serving/deploy uses


@dataclasses.dataclass
class InfraVerdict:
    """Every check run, in order; blessed when they pass by the one rule for checks
    (``pipeline.checks.verdict``: none failed)."""

    checks: list[Check] = dataclasses.field(default_factory=list)

    @property
    def blessed(self) -> bool:
        return verdict(self.checks)[0] is Outcome.PASSED

    @property
    def reason(self) -> str:
        """ "<check>: <detail>" of the failing check; "" when blessed."""
        _, deciding = verdict(self.checks)
        return f"{deciding[0].name}: {deciding[0].detail}" if deciding else ""

    def passed(self, check: str, detail: str) -> None:
        self.checks.append(Check(check, Outcome.PASSED, detail))

    def not_checked(self, check: str, detail: str) -> None:
        self.checks.append(Check(check, Outcome.NOT_CHECKED, detail))

    def failed(self, check: str, detail: str) -> InfraVerdict:
        """Records the failure; returned so that ``validate`` stops at the first one."""
        self.checks.append(Check(check, Outcome.FAILED, detail))
        return self


@dataclasses.dataclass(frozen=True)
class Staged:
    """What push staged: the version folder and the config files, with what they assume."""

    version_dir: Path
    version: int  # the number it lands as
    model_name: str
    models_config: Path
    batching_config: Path | None  # None: batching off
    on_disk: Mapping[str, Sequence[int]]  # each model's versions once this one lands
    available: Mapping[str, set[int]]  # versions the server has loaded now (the old config's)
    before: tfs.ModelEntry | None  # this model's entry in the old models.config
    warmup_records: int  # how many the file must hold


def validate(staged: Staged, allow_unavailable: bool, timeout: float, real_server: bool = True) -> InfraVerdict:
    """Runs every check on ``staged``; ``real_server`` False skips the real-server check."""
    result = InfraVerdict()
    try:
        config = tfs.read_models_config(staged.models_config)
    except Exception as err:  # text_format.ParseError names the line
        return result.failed("models.config", f"does not parse as a ModelServerConfig: {err}")
    entry = tfs.entry_named(config, staged.model_name)
    problems = tfs.check_models_config(config, staged.on_disk, staged.available, allow_unavailable)
    if entry is not None:
        available = staged.available.get(staged.model_name, set())
        problems += tfs.check_label_moves(staged.before, entry, available, allow_unavailable)
    else:
        problems.append(f"model {staged.model_name!r} is not in model_config_list")
    if problems or entry is None:  # no entry has always added a problem
        return result.failed("models.config", "; ".join(problems))
    result.passed("models.config", f"{len(config.model_config_list.config)} model(s); labels {dict(entry.labels)}")

    if staged.batching_config is not None:
        try:
            params = tfs.read_batching(staged.batching_config)
        except Exception as err:
            return result.failed("batching.config", f"does not parse as BatchingParameters: {err}")
        problems = tfs.check_batching(params)
        if problems:
            return result.failed("batching.config", "; ".join(problems))
        result.passed("batching.config", f"max_batch_size {params.max_batch_size.value}")

    try:
        logs = read_warmup(warmup_path(staged.version_dir))
    except Exception as err:
        return result.failed("warmup file", f"does not parse: {str(err).strip().splitlines()[0][:300]}")
    if not 0 < len(logs) <= tfs.MAX_WARMUP_RECORDS or len(logs) != staged.warmup_records:
        return result.failed(
            "warmup file", f"holds {len(logs)} records; expected {staged.warmup_records} (at most 1000)"
        )
    result.passed("warmup file", f"{len(logs)} PredictionLog records")

    replayed = replay_in_fresh_process(staged.version_dir, staged.model_name, timeout)
    if not replayed.get("ok"):
        return result.failed("warmup replay", replayed.get("problem", "no result"))
    result.passed(
        "warmup replay",
        f"{replayed['records']} records and a REST body through serving_default in a fresh process "
        f"({replayed['classes']} classes, {replayed['seconds']} s)",
    )

    if not real_server:
        result.not_checked("real server", "turned off (push.real_server_check)")
        return result
    images = [log.predict_log.request.inputs[IMAGE_INPUT].string_val[0] for log in logs[:3]]
    command, why_not = real_server_command()
    if command is None:
        result.not_checked("real server", why_not)
        return result
    problem = check_with_real_server(command, staged, images, timeout)
    if problem:
        return result.failed("real server", problem)
    result.passed("real server", f"{' '.join(command[:2])} loaded the version and answered a REST predict")
    return result


def replay_in_fresh_process(version_dir: Path, model_name: str, timeout: float) -> dict[str, Any]:
    """``infra_replay``'s JSON result, or ``{"ok": False, "problem": ...}`` if it crashed or
    ran past ``timeout`` seconds."""
    command = [sys.executable, "-m", "visionpipe.serving.infra_replay", str(version_dir), model_name]
    # TensorFlow's C++ start-up lines would bury the error.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "problem": f"the replay did not finish within {timeout:g} s"}
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
    return {"ok": False, "problem": f"the replay process exited with code {done.returncode}: {tail}"}


def real_server_command() -> tuple[list[str] | None, str]:
    """How to start a real TF Serving here (the command's start, without flags), or None and why not."""
    binary = shutil.which("tensorflow_model_server")
    if binary:
        return [binary], ""
    if not shutil.which("docker"):
        return None, "no tensorflow_model_server on PATH and no docker command"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return None, "no tensorflow_model_server on PATH; docker info timed out"
    if info.returncode != 0:
        return None, "no tensorflow_model_server on PATH and no Docker daemon reachable (docker info failed)"
    image = subprocess.run(["docker", "image", "inspect", SERVING_IMAGE], capture_output=True, timeout=30)
    if image.returncode != 0:
        return None, f"Docker is reachable but the image {SERVING_IMAGE} is not present (nothing is downloaded)"
    return ["docker", "run"], ""


def check_with_real_server(command: list[str], staged: Staged, images: list[bytes], timeout: float) -> str | None:
    """Serves the staged version alone with the real server, the way serve.sh starts it (a
    models.config, the staged batching.config, paths mounted at their own path for Docker),
    and sends a REST predict; returns a problem or None."""
    version_dir, model_name = staged.version_dir.resolve(), staged.model_name
    with tempfile.TemporaryDirectory(prefix="visionpipe-infra-") as tmp:
        root = Path(tmp)
        (root / model_name).mkdir()
        (root / model_name / str(staged.version)).symlink_to(version_dir)
        config = tfs.model_server_config([tfs.ModelEntry(model_name, str(root / model_name))])
        tfs.write_text_proto(root / tfs.MODELS_CONFIG, config)
        flags = [f"--model_config_file={root / tfs.MODELS_CONFIG}"]
        if staged.batching_config is not None:
            shutil.copy(staged.batching_config, root / tfs.BATCHING_CONFIG)
            # Bare boolean flag: tensorflow_model_server takes it so, and so does `visionpipe serve`.
            flags += ["--enable_batching", f"--batching_parameters_file={root / tfs.BATCHING_CONFIG}"]
        port = _free_port()
        if command[0] == "docker":
            container = f"visionpipe-infra-{port}"
            start = ["docker", "run", "--rm", "--name", container, "-p", f"{port}:8501", "-v", f"{root}:{root}:ro",
                     "-v", f"{version_dir}:{version_dir}:ro", SERVING_IMAGE, *flags]  # fmt: skip
            stop = ["docker", "rm", "-f", container]
        else:
            start = [*command, f"--port={_free_port()}", f"--rest_api_port={port}", *flags]
            stop = None
        server = subprocess.Popen(start, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            return _predict_when_ready(port, model_name, images, timeout, server)
        finally:
            if stop:
                subprocess.run(stop, capture_output=True, timeout=60)
            server.terminate()
            server.wait(timeout=30)


def _predict_when_ready(port: int, model_name: str, images: list[bytes], timeout: float, server) -> str | None:
    url = f"http://127.0.0.1:{port}/v1/models/{model_name}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            return f"the server exited with code {server.returncode}: {server.stderr.read()[-500:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                states = [v["state"] for v in json.load(response)["model_version_status"]]
            if "AVAILABLE" in states:
                break
        except OSError:
            pass
        time.sleep(1)
    else:
        return f"the version was not AVAILABLE within {timeout:g} s"
    body = json.dumps({"instances": [{"b64": base64.b64encode(b).decode()} for b in images]}).encode()
    request = urllib.request.Request(f"{url}:predict", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.load(response)["predictions"]
    sums = [sum(p[PROBABILITIES]) for p in predictions]
    if len(predictions) != len(images) or any(abs(s - 1) > 1e-3 for s in sums):
        return f"REST predict answered {len(predictions)} predictions with probability sums {sums}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
