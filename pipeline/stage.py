"""What a stage is: a spec (typed inputs, outputs, params) and an executor.

The pipeline wires specs only. A spec's ``inputs`` and ``outputs`` are dataclasses whose
fields are artifact types. Each input names where it comes from (``upstream(stage, output)``,
or ``previous()`` for the stage's own earlier output); the runner resolves it from this run's
outputs or the latest run of that stage, creates each output artifact in a temporary
directory, and calls the executor named by ``executor`` (imported lazily, so listing runs
never imports TensorFlow). An ``optional`` input is None when its stage is not in the graph.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionpipe.pipeline import fingerprint
from visionpipe.pipeline.artifacts import Artifact
from visionpipe.pipeline.output import Output


@dataclasses.dataclass(frozen=True)
class ExternalInput:
    fingerprint: str
    value: Any = None  # e.g. the listing the fingerprint was computed from, so it is read once


@dataclasses.dataclass(frozen=True)
class StageSpec:
    name: str
    inputs: type  # dataclass of Artifact-typed fields
    outputs: type  # dataclass of Artifact-typed fields
    # Picks this stage's typed params out of the run's config tree (the application's Config,
    # which the framework knows only as a RunTree).
    params: Callable[[Any], Any]
    executor: str  # "package.module:function"
    # Refuses to run on inputs that did not pass a check (e.g. no Blessing); returns why.
    gate: Callable[[Any], str | None] | None = None
    # What the stage reads from outside the artifact store (e.g. a folder): its fingerprint,
    # and what was read to compute it, handed to the executor as ``ctx.external``.
    external_input: Callable[[Any], ExternalInput] | None = None
    key_metric: str = ""
    # Trains across a multi-worker cluster: every task of the cluster runs it, and only the
    # chief's outputs are registered (``pipeline.cluster``).
    distributed: bool = False
    # Params that depend on the inputs (recipe: auto): "package.module:function" taking (params,
    # {input name: artifact or None}) and returning (params, lines to show). The runner calls it
    # before the fingerprint, so caching and the executor see the values the stage will use.
    resolve_params: str = ""

    def input_fields(self) -> dict[str, Wire]:
        """Inputs produced upstream in this run (or the latest upstream run)."""
        hints = typing.get_type_hints(self.inputs)
        return {
            f.name: Wire(
                _artifact_type(hints[f.name]),
                f.metadata["upstream"][0],
                f.metadata["upstream"][1],
                f.metadata["optional"],
            )
            for f in dataclasses.fields(self.inputs)
            if "upstream" in f.metadata
        }

    def previous_fields(self) -> dict[str, tuple[type[Artifact], bool]]:
        """Inputs that are this stage's own earlier outputs: name -> (type, other_data_only)."""
        hints = typing.get_type_hints(self.inputs)
        return {
            f.name: (_artifact_type(hints[f.name]), f.metadata["previous"] == "other_data")
            for f in dataclasses.fields(self.inputs)
            if "previous" in f.metadata
        }

    def output_fields(self) -> dict[str, type[Artifact]]:
        return typing.get_type_hints(self.outputs)

    def code_modules(self) -> tuple[str, ...]:
        """Where the code this stage runs starts: its spec's, executor's and params resolver's modules."""
        targets = [self.inputs.__module__, self.executor, self.resolve_params]
        return tuple(t.partition(":")[0] for t in targets if t)

    def code_version(self) -> str:
        """The hash of the code this stage runs: ``code_modules`` and every project module they
        import (``fingerprint``)."""
        return fingerprint.stage_code_version(*self.code_modules())

    def load_executor(self) -> Callable[..., dict[str, Any]]:
        return _load(self.executor)

    def resolved(self, params: Any, upstream: dict[str, Artifact | None]) -> tuple[Any, list[str]]:
        """``params`` as ``resolve_params`` completes them from the inputs (unchanged without it)."""
        return _load(self.resolve_params)(params, upstream) if self.resolve_params else (params, [])


def check_wiring(specs: list[StageSpec]) -> None:
    """Raises ValueError naming the stage and input when an input is wired to a stage that does
    not come before it, to an output that stage does not have, or to an artifact of another
    type; or when an executor's module cannot be found. Run when the graph is built, so a typo
    fails in a unit test, not when that stage runs."""
    outputs: dict[str, dict[str, type[Artifact]]] = {}
    for spec in specs:
        for name, wire in spec.input_fields().items():
            where = f"stage {spec.name!r}, input {name!r}: upstream({wire.stage!r}, {wire.output!r})"
            if wire.stage not in outputs:
                raise ValueError(f"{where}: no stage {wire.stage!r} before it (stages: {', '.join(outputs)})")
            produced = outputs[wire.stage].get(wire.output)
            if produced is None:
                raise ValueError(f"{where}: {wire.stage}'s outputs are {', '.join(outputs[wire.stage])}")
            if not issubclass(produced, wire.type):
                raise ValueError(f"{where}: that output is of type {produced.__name__}, not {wire.type.__name__}")
        for target in filter(None, (spec.executor, spec.resolve_params)):
            module = target.partition(":")[0]
            if importlib.util.find_spec(module) is None:
                raise ValueError(f"stage {spec.name!r}: no module {module!r} for {target!r}")
        outputs[spec.name] = spec.output_fields()


def _load(target: str) -> Callable[..., Any]:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


@dataclasses.dataclass(frozen=True)
class Wire:
    """Where an input comes from: ``stage``'s output named ``output``."""

    type: type[Artifact]
    stage: str
    output: str
    optional: bool


def _artifact_type(hint: Any) -> type[Artifact]:
    """``X`` from ``X`` or ``X | None``."""
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)


def upstream(stage: str, output: str, optional: bool = False) -> Any:
    """Declares an input wired to ``stage``'s output ``output``. An optional input (typed
    ``X | None``) is None when that stage is not part of the run's graph or has not run."""
    metadata = {"upstream": (stage, output), "optional": optional}
    return dataclasses.field(default=None, metadata=metadata) if optional else dataclasses.field(metadata=metadata)


def previous(other_data: bool = False) -> Any:
    """Declares an input field holding this stage's own output from an earlier execution.

    Resolved to the newest artifact the stage produced (not served from cache), or, with
    ``other_data``, produced from other input data, so drift is measured against the previous
    data version. It is recorded in lineage but left out of the fingerprint: otherwise a
    stage would never be cached, its own last output being a new input every time.
    """
    return dataclasses.field(default=None, metadata={"previous": "other_data" if other_data else "latest"})


@dataclasses.dataclass
class StageContext:
    """What an executor may know about the run besides its inputs, outputs and params."""

    stage: str
    run_root: Path
    scratch_dir: Path  # survives a killed run (keyed by fingerprint): resumable state lives here
    seed: int
    beam_args: list[str]
    output: Output = dataclasses.field(default_factory=Output)
    external: Any = None  # what the spec's ``external_input`` read (e.g. ingest's source listing)
    started: float = dataclasses.field(default_factory=time.time)

    def log(self, message: str) -> None:
        self.output.log(self.stage, message)

    def progress(self, description: str, total: int | None, unit: str = ""):
        """A context manager tracking long work (counts, rate, ETA); see ``pipeline.output``."""
        return self.output.progress(self.stage, description, total, unit)
