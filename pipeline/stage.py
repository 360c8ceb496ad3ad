"""What a stage is: a spec (typed inputs, outputs, params) and an executor.

The pipeline wires specs only. A spec's ``inputs`` and ``outputs`` are dataclasses whose
fields are artifact types; the runner resolves each input field by its type from upstream
outputs, creates each output artifact in a temporary directory, and calls the executor named
by ``executor`` (imported lazily, so listing runs never imports TensorFlow).
"""
from __future__ import annotations

import dataclasses
import importlib
import time
import typing
from pathlib import Path
from typing import Any, Callable

from pipeline.artifacts import Artifact
from pipeline.config import Config


@dataclasses.dataclass(frozen=True)
class StageSpec:
    name: str
    inputs: type  # dataclass of Artifact-typed fields
    outputs: type  # dataclass of Artifact-typed fields
    params: Callable[[Config], Any]  # picks this stage's typed params out of the config tree
    executor: str  # "package.module:function"
    # Refuses to run on inputs that did not pass a check (e.g. no Blessing); returns why.
    gate: Callable[[Any], str | None] | None = None
    # Fingerprint of what the stage reads from outside the artifact store (e.g. a folder).
    external_fingerprint: Callable[[Any], str] | None = None
    key_metric: str = ""

    def input_fields(self) -> dict[str, type[Artifact]]:
        return typing.get_type_hints(self.inputs)

    def output_fields(self) -> dict[str, type[Artifact]]:
        return typing.get_type_hints(self.outputs)

    def load_executor(self) -> Callable[..., dict[str, Any]]:
        module, _, func = self.executor.partition(":")
        return getattr(importlib.import_module(module), func)


@dataclasses.dataclass
class StageContext:
    """What an executor may know about the run besides its inputs, outputs and params."""
    stage: str
    run_root: Path
    scratch_dir: Path  # survives a killed run (keyed by fingerprint): resumable state lives here
    seed: int
    beam_args: list[str]
    started: float = dataclasses.field(default_factory=time.time)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.stage:<9} {message}", flush=True)
