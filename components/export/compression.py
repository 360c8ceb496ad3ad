"""Pruning and quantization-aware training for the export stage, through the tfmot bridge.

The trained network's weights and a job file go to ``tfmot_bridge`` in a subprocess (tfmot
needs tf_keras and switches its process to legacy Keras, which must never reach this one);
the bridge writes a full-integer int8 .tflite and a report. A model the bridge cannot rebuild
or compress (or a bridge stopped at its timeout) raises UserError with the bridge's own last
error line; export records that file as failed, keeps it out of push, and the rest stands.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np

from visionpipe.components.export.config import CompressionConfig, ExportConfig
from visionpipe.components.export.targets import Target
from visionpipe.models.classifier import batch_norm_states, network_of
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext

# The bridge prints "<prefix><steps done> <loss>" lines while it fine-tunes (the job file
# carries the prefix); everything else it prints goes to bridge.log.
PROGRESS_PREFIX = "@visionpipe-progress "


def compress(
    target: Target,
    classifier: keras.Model,
    model: ModelConfig,
    spec: PreprocessingSpec,
    num_classes: int,
    train_images: int,
    examples: Path,
    export: ExportConfig,
    seed: int,
    temperature: float,
    logit_offsets: list[float] | None,
    out: Path,
    ctx: StageContext,
) -> tuple[Path, dict]:
    """Runs the bridge for one target's technique (``targets.py``: prune, qat or pqat); returns
    (the .tflite written, the bridge's report). The file serves softmax(logits / ``temperature``
    + ``logit_offsets``): evaluate's calibration and prior correction."""
    technique, config = target.technique, export.compression
    work = ctx.scratch_dir / f"tfmot-{technique}"
    work.mkdir(parents=True, exist_ok=True)
    network = network_of(classifier)
    # mypy matches the ** keys against savez's allow_pickle: bool; they are w0, w1, ... only.
    np.savez(work / "weights.npz", **{f"w{i}": np.asarray(w) for i, w in enumerate(network.weights)})  # type: ignore[arg-type]
    job: dict[str, Any] = {  # JSON for the bridge
        "technique": technique,
        "model": model.name,
        "args": {k: list(v) if isinstance(v, tuple) else v for k, v in model.args.items()},
        "spec": dataclasses.asdict(spec),
        "num_classes": num_classes,
        "weights": str(work / "weights.npz"),
        "batch_norm": batch_norm_states(network),
        "examples": str(examples),
        "prune": dataclasses.asdict(config.prune),
        "epochs": config.epochs,
        "steps_per_epoch": config.steps_per_epoch or math.ceil(train_images / config.batch_size),
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "calibration_samples": 256,
        "float_ops": export.int8_float_ops,
        "seed": seed,
        "temperature": temperature,
        "logit_offsets": logit_offsets,
        "output": str(out / target.file),
        "report": str(work / "report.json"),
        "progress_prefix": PROGRESS_PREFIX,
    }
    (work / "job.json").write_text(json.dumps(job, indent=2))
    _run_job(work, job, config, ctx)
    return out / target.file, json.loads((work / "report.json").read_text())


def _run_job(work: Path, job: dict, config: CompressionConfig, ctx: StageContext) -> None:
    """Runs the bridge on ``work/job.json``, showing its fine-tuning progress; what it prints goes
    to ``work/bridge.log``. Raises UserError, with the bridge's own last error line, when it
    failed or was stopped at its timeout."""
    technique, log_file = job["technique"], work / "bridge.log"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    command = [sys.executable, "-m", "visionpipe.components.export.tfmot_bridge", str(work / "job.json")]
    steps = job["epochs"] * job["steps_per_epoch"] * (2 if technique == "pqat" else 1)
    ctx.log(f"{technique}: tfmot in a subprocess ({config.epochs} fine-tuning epochs, {steps:,} steps)")
    returncode, output = _run_bridge(
        command, env, config.timeout_seconds, ctx.progress(f"{technique} fine-tuning", steps, "steps")
    )
    log_file.write_text(output)
    if returncode is None:
        raise UserError(
            f"{technique} did not finish within export.compression.timeout_seconds={config.timeout_seconds} "
            f"(log so far: {log_file})"
        )
    if returncode != 0:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        raise UserError(
            f"{technique} of model {job['model']!r} failed in the tfmot bridge: {lines[-1] if lines else 'no output'} "
            f"(full log: {log_file})"
        )


def _run_bridge(command: list[str], env: dict, timeout: float, progress) -> tuple[int | None, str]:
    """Runs the bridge, feeding its progress lines to ``progress``; (exit code or None when it
    was stopped at the timeout, everything else it printed)."""
    env = {**env, "PYTHONUNBUFFERED": "1"}  # its log lines in the order they were printed
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if process.stdout is None:  # never: stdout=PIPE gives a pipe
        raise RuntimeError("the bridge's subprocess has no stdout pipe")
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    output = []
    try:
        with progress as tracker:
            for line in process.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    done, loss = line[len(PROGRESS_PREFIX) :].split()
                    tracker.update(int(done), loss=loss)
                else:
                    output.append(line)
        returncode = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:  # the stage itself was interrupted
            process.kill()
            process.wait()
    return (None if timed_out.is_set() else returncode), "".join(output)


def describe_report(report: dict) -> str:
    """One line on what the bridge did: the layers it pruned, the layers QAT kept in float."""
    parts = []
    if "pruned_layers" in report:
        parts.append(f"{len(report['pruned_layers'])} layers pruned")
    if "float_in_qat" in report:
        kept = report["float_in_qat"]
        parts.append(
            f"quantization-aware training of every layer but {len(kept)} kept in float and quantized after "
            f"training ({', '.join(kept[:6])}{', ...' if len(kept) > 6 else ''})"
            if kept
            else "quantization-aware training of every layer"
        )
    return f"{report['technique']}: " + "; ".join(parts)
