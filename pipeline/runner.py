"""Runs the stage graph: resolves inputs, fingerprints, caches, and commits outputs atomically.

Each stage writes into ``artifacts/<stage>/.tmp-<execution>/`` and the directory is renamed
to ``artifacts/<stage>/<execution>/`` only when the executor returns; the outputs are then
registered in the metadata store in one transaction. A stage that fails or is killed leaves
only a temp directory, which the next run deletes before it redoes the stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from visionpipe.pipeline import fingerprint as fp
from visionpipe.pipeline.artifacts import Artifact
from visionpipe.pipeline.checks import StageStatus
from visionpipe.pipeline.config import RunTree, dump_yaml, to_dict
from visionpipe.pipeline.errors import GateError, NotRegistered, PipelineBusy, UserError
from visionpipe.pipeline.metadata import MetadataStore
from visionpipe.pipeline.output import Output
from visionpipe.pipeline.stage import ExternalInput, StageContext, StageSpec


@dataclasses.dataclass
class StageResult:
    stage: str
    status: StageStatus
    seconds: float = 0.0
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Artifact] = dataclasses.field(default_factory=dict)
    message: str = ""
    key_metric: str = ""

    @property
    def notes(self) -> list[str]:
        """What a person should know about the stage's choices (e.g. how splits were made)."""
        return list(self.summary.get("notes", []))


@dataclasses.dataclass
class RunResult:
    run_id: int
    root: Path
    stages: list[StageResult]
    log_path: Path | None = None  # everything the run printed, libraries included (CLI runs)
    task: str = ""  # a non-chief task of a multi-worker cluster ("worker-1"); its run_id is 0

    @property
    def ok(self) -> bool:
        return all(s.status.ok for s in self.stages)

    def outputs(self, stage: str) -> dict[str, Artifact]:
        return next(s.outputs for s in self.stages if s.stage == stage)

    def failure(self) -> StageResult | None:
        return next((s for s in self.stages if s.status.stopped), None)


def select_stages(graph: list[StageSpec], only: str | None, start: str | None) -> list[StageSpec]:
    names = [s.name for s in graph]
    for name in (only, start):
        if name is not None and name not in names:
            raise UserError(f"unknown stage {name!r}; stages are: {', '.join(names)}")
    if only:
        return [s for s in graph if s.name == only]
    if start:
        return graph[names.index(start) :]
    return list(graph)


def run_graph(
    config: RunTree,
    graph: list[StageSpec],
    only: str | None = None,
    start: str | None = None,
    force: bool = False,
    command: str = "",
    output: Output | None = None,
    override_gate: str = "",
    cluster_task: str = "",
) -> RunResult:
    """Runs the stages of ``graph`` (in order) under ``config``: all of them, one stage
    (``only``) or a stage onward (``start``). The application builds the graph
    (``visionpipe/graph.py``); the runner knows no stage.

    ``override_gate``, when given, is a person's reason to run stages whose gate refuses
    (e.g. push a model evaluate did not bless); each overridden gate is logged and recorded
    with the reason in the stage's summary and its outputs' properties.

    A stage named by ``only``/``start`` always executes; the others are cached when their
    fingerprint is unchanged, unless ``force``. ``output`` receives the run's messages and
    progress (default: plain lines on stdout); one made with ``capture_logs`` also keeps
    everything the libraries print in ``runs/<id>/run.log`` instead of on the console.
    ``cluster_task`` names this process's task when it is a non-chief task of a multi-worker
    cluster (``cluster.non_chief_task``): it then joins the chief's distributed stage.
    """
    output = output or Output()
    selected = select_stages(graph, only, start)
    forced = {s.name for s in selected} if force else {selected[0].name} if (only or start) else set()
    root = Path(config.run.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if cluster_task:
        return _join_cluster(config, root, graph, selected, cluster_task, output)
    with RootLock(root):
        store = MetadataStore(root / "metadata.sqlite")
        try:
            store.abandon_running()
            _remove_temp_dirs(root)
            run_id = store.start_run(fp.code_version(), to_dict(config), command)
            run = _Run(store, config, root, root / "runs" / str(run_id), run_id, output, override_gate=override_gate)
            run.dir.mkdir(parents=True, exist_ok=True)
            (run.dir / "config.yaml").write_text(dump_yaml(config))
            (run.dir / "code_version.txt").write_text(fp.code_version() + "\n")
            log = run.dir / "run.log"
            with output.capture(log) if output.capture_logs else contextlib.nullcontext():
                results = _run_stages(run, graph, selected, forced)
            # NOT_RUN only follows a failed, refused or done-elsewhere stage, so it needs no check.
            status = StageStatus.FAILED if any(r.status.stopped for r in results) else StageStatus.SUCCEEDED
            store.finish_run(run_id, status)
            return RunResult(run_id, root, results, log if output.capture_logs else None)
        finally:
            store.close()


def _join_cluster(
    config: RunTree, root: Path, graph: list[StageSpec], selected: list[StageSpec], task: str, output: Output
) -> RunResult:
    """A non-chief task of a multi-worker cluster trains with the chief on the artifacts the
    chief registered under the run root they share. It takes no lock and records nothing: the
    chief does both. Its logs go to ``scratch/<task>/``."""
    if not selected[0].distributed:
        first = next(s.name for s in graph if s.distributed)
        raise UserError(
            f"this process is {task} of the multi-worker cluster in TF_CONFIG, and only the chief runs the "
            f"stages before {first}: run them first (with TF_CONFIG unset), then start every task, chief "
            f"included, on the same run.root with: visionpipe run --from {first}"
        )
    store = MetadataStore(root / "metadata.sqlite")
    try:
        run = _Run(store, config, root, root / "scratch" / task, 0, output, task)
        run.dir.mkdir(parents=True, exist_ok=True)
        log = run.dir / "run.log"
        with output.capture(log) if output.capture_logs else contextlib.nullcontext():
            results = _run_stages(run, graph, selected, {selected[0].name})
        return RunResult(0, root, results, log if output.capture_logs else None, task)
    finally:
        store.close()


@dataclasses.dataclass
class _Run:
    """One run in progress: where it records, what it runs on, where it reports."""

    store: MetadataStore
    config: RunTree
    root: Path
    dir: Path
    id: int
    output: Output
    task: str = ""  # set for a non-chief task of a multi-worker cluster, which registers nothing
    override_gate: str = ""  # a person's reason to run stages whose gate refuses


Outputs = dict[tuple[str, str], Artifact]  # (stage, output name) -> artifact


def _run_stages(run: _Run, graph: list[StageSpec], selected: list[StageSpec], forced: set[str]) -> list[StageResult]:
    available: Outputs = {}
    results: list[StageResult] = []
    selected_names = {s.name for s in selected}
    # Stages of the graph before the selection contribute their latest successful outputs.
    for spec in graph:
        if spec.name in selected_names:
            break
        latest = run.store.latest_outputs(spec.name)
        if latest is not None:
            available.update({(spec.name, name): artifact for name, artifact in latest[1].items()})
    for i, spec in enumerate(selected):
        result = _run_stage(run, spec, available, spec.name in forced)
        results.append(result)
        if not result.status.ok:
            results.extend(StageResult(s.name, StageStatus.NOT_RUN) for s in selected[i + 1 :])
            break
        available.update({(spec.name, name): artifact for name, artifact in result.outputs.items()})
    return results


def _run_stage(run: _Run, spec: StageSpec, available: Outputs, force: bool) -> StageResult:
    started = time.time()
    store, config, root = run.store, run.config, run.root
    params = spec.params(config)
    try:
        upstream = _resolve_inputs(spec, available)
        params, lines = spec.resolved(params, upstream)
        for line in lines:
            run.output.log(spec.name, line)
        external = spec.external_input(params) if spec.external_input else ExternalInput("")
    except UserError as err:
        run.output.log(spec.name, f"failed: {err}")
        return StageResult(spec.name, StageStatus.FAILED, time.time() - started, message=str(err))
    # An optional input that is absent leaves the fingerprint as if the input did not exist.
    upstream_fps = {n: a.fingerprint for n, a in upstream.items() if a is not None}
    stage_fp = fp.stage_fingerprint(spec.name, params, upstream_fps, external.fingerprint, spec.code_version())
    # What data the stage read: its upstream artifacts, or for a source stage what it reads
    # from outside (a reviewed schema file is a setting, not data, for validate).
    data_key = fp.digest(upstream_fps or external.fingerprint)
    inputs = spec.inputs(**upstream, **_resolve_previous(store, spec, data_key))
    input_map = {n: a for n, a in _as_map(inputs).items() if a is not None}
    ctx = StageContext(
        stage=spec.name,
        run_root=root,
        seed=config.seed,
        beam_args=beam_args(config),
        # A non-chief task keeps its own: the chief deletes the shared one when it registers.
        scratch_dir=root / "scratch" / f"{spec.name}-{stage_fp[:16]}{'-' + run.task if run.task else ''}",
        output=run.output,
        external=external.value,
    )
    reason = spec.gate(inputs) if spec.gate else None
    override = {"gate": reason, "reason": run.override_gate} if reason and run.override_gate else None
    if override:
        ctx.log(f"gate OVERRIDDEN (--override-gate): {reason}; reason given: {run.override_gate}")
    elif reason:
        ctx.log(f"refused: {reason}")
        return StageResult(spec.name, StageStatus.REFUSED, time.time() - started, message=reason)

    if run.task:
        return _run_unregistered(run, spec, inputs, params, ctx, started)
    cached = None if force else store.cached_outputs(spec.name, stage_fp)
    if cached is not None:
        execution_id = store.start_execution(run.id, spec.name, stage_fp, input_map, data_key)
        summary = store.succeeded_summary(spec.name, stage_fp)
        store.finish_execution(execution_id, cached, summary, cached=True)
        ctx.log("cached (inputs, params and code unchanged)")
        return StageResult(
            spec.name, StageStatus.CACHED, time.time() - started, summary, cached, key_metric=_key_metric(spec, summary)
        )

    execution_id = store.start_execution(run.id, spec.name, stage_fp, input_map, data_key)
    return _execute(run, spec, inputs, params, ctx, (stage_fp, execution_id), override, started)


def _execute(
    run: _Run, spec: StageSpec, inputs: Any, params: Any, ctx: StageContext, ids: tuple[str, int], override, started
) -> StageResult:
    """Runs the executor into a temporary folder and, on success, renames it into place and
    registers the outputs; ``ids`` is (the stage's fingerprint, its execution id)."""
    stage_fp, execution_id = ids
    stage_dir = run.root / "artifacts" / spec.name
    tmp_dir, final_dir = stage_dir / f".tmp-{execution_id}", stage_dir / str(execution_id)
    outputs = {name: cls(uri=str(tmp_dir / name)) for name, cls in spec.output_fields().items()}
    for artifact in outputs.values():
        artifact.path.mkdir(parents=True)
    ctx.log("running")
    try:
        summary = spec.load_executor()(inputs, spec.outputs(**outputs), params, ctx) or {}
    except (Exception, KeyboardInterrupt) as err:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        return _failed(run, spec, err, execution_id, ctx, started)
    os.replace(tmp_dir, final_dir)
    ctx.log(f"outputs in {final_dir}")
    for name, artifact in outputs.items():
        artifact.uri = str(final_dir / name)
        artifact.fingerprint = fp.artifact_fingerprint(stage_fp, execution_id, name)
        if override:
            artifact.properties["gate_override"] = override
    if override:
        summary["gate_override"] = override
        summary.setdefault("notes", []).append(f"gate overridden: {override['gate']} (reason: {override['reason']})")
    summary["seconds"] = round(time.time() - started, 2)
    run.store.finish_execution(execution_id, outputs, summary)
    shutil.rmtree(ctx.scratch_dir, ignore_errors=True)  # resumable state is no longer needed
    return StageResult(
        spec.name, StageStatus.SUCCEEDED, time.time() - started, summary, outputs, key_metric=_key_metric(spec, summary)
    )


def _failed(run: _Run, spec: StageSpec, err: BaseException, execution_id: int, ctx, started: float) -> StageResult:
    """Records a failed execution: a UserError's message as it is; anything else (a bug or an
    environment problem) in one line, its traceback on file. An interrupt is re-raised."""
    user_facing = isinstance(err, UserError)
    message = str(err) if user_facing else f"{type(err).__name__}: {err}"
    run.store.fail_execution(execution_id, message if user_facing else traceback.format_exc())
    if isinstance(err, KeyboardInterrupt):
        raise err
    if not user_facing:
        trace = run.dir / f"{spec.name}.traceback.txt"
        trace.write_text(traceback.format_exc())
        run.output.detail(traceback.format_exc())
        message = f"{message} (unexpected; full traceback in {trace})"
    ctx.log(f"failed: {message}")
    status = StageStatus.REFUSED if isinstance(err, GateError) else StageStatus.FAILED
    return StageResult(spec.name, status, time.time() - started, message=message)


def _run_unregistered(
    run: _Run, spec: StageSpec, inputs: Any, params: Any, ctx: StageContext, started: float
) -> StageResult:
    """A non-chief task's share of a distributed stage: the executor raises NotRegistered once
    its work with the chief is done; anything it writes stays in its scratch folder."""
    outputs = {name: cls(uri=str(ctx.scratch_dir / "outputs" / name)) for name, cls in spec.output_fields().items()}
    for artifact in outputs.values():
        artifact.path.mkdir(parents=True, exist_ok=True)
    ctx.log(f"running as {run.task}")
    try:
        spec.load_executor()(inputs, spec.outputs(**outputs), params, ctx)
    except NotRegistered as done:
        ctx.log(str(done))
        shutil.rmtree(ctx.scratch_dir, ignore_errors=True)
        return StageResult(spec.name, StageStatus.DONE_ELSEWHERE, time.time() - started, message=str(done))
    except UserError as err:
        ctx.log(f"failed: {err}")
        return StageResult(spec.name, StageStatus.FAILED, time.time() - started, message=str(err))
    message = f"{run.task} was not made part of a multi-worker cluster; check TF_CONFIG and train.strategy"
    ctx.log(f"failed: {message}")
    return StageResult(spec.name, StageStatus.FAILED, time.time() - started, message=message)


def _resolve_inputs(spec: StageSpec, available: Outputs) -> dict[str, Artifact | None]:
    values = {}
    for name, wire in spec.input_fields().items():
        artifact = available.get((wire.stage, wire.output))
        if artifact is None and not wire.optional:
            raise UserError(
                f"stage {spec.name!r} needs the {wire.output} ({wire.type.TYPE}) of stage {wire.stage!r}, which has "
                "not been produced yet; run the upstream stages first (visionpipe run)"
            )
        if artifact is not None and not artifact.available:
            why = "visionpipe gc removed its files" if artifact.removed else f"its files are gone from {artifact.path}"
            raise UserError(
                f"stage {spec.name!r} needs the {wire.output} ({wire.type.TYPE}, artifact {artifact.id}) of stage "
                f"{wire.stage!r}, but {why}; rerun it: visionpipe run --from {wire.stage}"
            )
        values[name] = artifact
    return values


def _resolve_previous(store: MetadataStore, spec: StageSpec, data_key: str) -> dict[str, Artifact | None]:
    return {
        name: store.previous_output(spec.name, cls, data_key if other_data else None)
        for name, (cls, other_data) in spec.previous_fields().items()
    }


def _as_map(inputs: Any) -> dict[str, Artifact]:
    return {f.name: getattr(inputs, f.name) for f in dataclasses.fields(inputs)}


def _key_metric(spec: StageSpec, summary: dict[str, Any]) -> str:
    if not spec.key_metric or spec.key_metric not in summary:
        return ""
    value = summary[spec.key_metric]
    return f"{spec.key_metric}={value:.4f}" if isinstance(value, float) else f"{spec.key_metric}={value}"


def beam_args(config: RunTree) -> list[str]:
    """Beam pipeline options from the config; runner-specific ones pass through verbatim."""
    beam = config.beam
    args = [f"--runner={beam.runner_flag}"]
    if beam.runner == "DirectRunner":
        args.append(f"--direct_num_workers={beam.direct_num_workers}")
        if beam.direct_running_mode != "auto":  # auto: the stage picks a mode for its amount of work
            args.append(f"--direct_running_mode={beam.direct_running_mode}")
    return args + list(beam.extra_options)


def _remove_temp_dirs(root: Path) -> None:
    """Deletes what killed stages left behind; they registered nothing, so nothing points here."""
    for tmp in (root / "artifacts").glob("*/.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


class RootLock:
    """One pipeline process per run root: two writers would race on the same artifacts (gc
    takes it too)."""

    def __init__(self, root: Path):
        self._path = root / ".lock"
        self._file = None

    def __enter__(self):
        self._file = open(self._path, "w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise PipelineBusy(
                f"another visionpipe run is using {self._path.parent}; wait for it "
                "to finish or use a different run.root"
            ) from None
        return self

    def __exit__(self, *_):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
