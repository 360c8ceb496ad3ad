"""Gathers what a run's report shows from its artifacts and writes ``report.html`` and
``report.md`` into ``<run.root>/runs/<id>/`` (``visionpipe report [RUN]``; ``run`` does it too).

A run that started part-way (``--from export``) reports the evaluation its stages read, and
the data statistics of the latest validate run, so every run with an evaluation has a report.
"""

from __future__ import annotations

import json
from pathlib import Path

from visionpipe.pipeline.artifacts import (
    Anomalies,
    Artifact,
    Blessing,
    DataQuality,
    Evaluation,
    Examples,
    ExportedModel,
    PushedModel,
    Statistics,
)
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.metadata import SUCCESS, MetadataStore

HTML, MARKDOWN = "report.html", "report.md"


class NothingToReport(UserError):
    """The run has no evaluation (it stopped before evaluate, or ran no stage that read one)."""


def _run_artifacts(store: MetadataStore, run_id: int) -> tuple[dict[str, Artifact], list]:
    """Artifact type -> the artifact the run produced or read (produced wins), and the gate
    overrides recorded by its stages."""
    found: dict[str, Artifact] = {}
    overrides = []
    executions = [e for e in store.executions_of_run(run_id) if e["status"] in SUCCESS]
    for kind in ("input", "output"):  # outputs last: they replace what was read
        for execution in executions:
            for artifact in store.artifacts_of(execution["id"], kind).values():
                found[artifact.TYPE] = artifact
    for execution in executions:
        summary = json.loads(execution["summary"]) if execution["summary"] else {}
        if "gate_override" in summary:
            overrides.append((execution["stage"], summary["gate_override"]))
    for stage in ("validate",):  # data statistics: from the latest validate when this run skipped it
        latest = store.latest_outputs(stage)
        if latest is not None:
            for artifact in latest[1].values():
                found.setdefault(artifact.TYPE, artifact)
    return found, overrides


def write_run_report(root: Path, run_id: int | None = None) -> tuple[Path, Path]:
    """Writes the report of run ``run_id`` (default: the latest run with an evaluation); returns
    the paths of the HTML and Markdown files."""
    from visionpipe.report_render import RunReport, render_html, render_markdown

    db = root / "metadata.sqlite"
    if not db.is_file():
        raise UserError(f"no runs under {root}; run the pipeline first (visionpipe run)")
    store = MetadataStore(db)
    try:
        runs = store.runs(limit=1000)  # newest first
        candidates = [run_id] if run_id is not None else [r["id"] for r in runs]
        for candidate in candidates:
            artifacts, overrides = _run_artifacts(store, candidate)
            if Evaluation.TYPE in artifacts and Blessing.TYPE in artifacts:
                break
        else:
            which = f"run {run_id} has" if run_id is not None else "no run under this root has"
            raise NothingToReport(f"{which} an evaluation to report; run the pipeline through evaluate first")
        command = next((r["command"] for r in runs if r["id"] == candidate), "") or ""
    finally:
        store.close()
    evaluation, blessing = artifacts[Evaluation.TYPE], artifacts[Blessing.TYPE]
    exported, pushed = artifacts.get(ExportedModel.TYPE), artifacts.get(PushedModel.TYPE)
    statistics, anomalies = artifacts.get(Statistics.TYPE), artifacts.get(Anomalies.TYPE)
    quality, examples = artifacts.get(DataQuality.TYPE), artifacts.get(Examples.TYPE)
    report = RunReport(
        title=f"visionpipe run {candidate}",
        command=command,
        evaluation_dir=evaluation.path,
        metrics=_json(evaluation.path / Evaluation.METRICS),
        blessing=_json(blessing.path / Blessing.FILE),
        split_stats=_json(statistics.path / Statistics.SUMMARY) if statistics else None,
        anomalies=_json(anomalies.path / "anomalies.json") if anomalies else None,
        exported=_json(exported.path / ExportedModel.TABLE) if exported else None,
        pushed=pushed.properties if pushed else None,
        overrides=overrides,
        data_quality=_json(quality.path / DataQuality.FINDINGS_JSON) if quality else None,
        data_quality_dir=quality.path if quality else None,
        curation=_curation(examples) if isinstance(examples, Examples) else None,
    )
    out = root / "runs" / str(candidate)
    out.mkdir(parents=True, exist_ok=True)
    (out / HTML).write_text(render_html(report))
    (out / MARKDOWN).write_text(render_markdown(report))
    return out / HTML, out / MARKDOWN


def _curation(examples: Examples) -> dict:
    reasons = examples.properties.get("curation_reasons", {})
    return {**examples.curation, "reasons": reasons, "path": str(examples.path)}


def _json(path: Path):
    if not path.is_file():
        raise UserError(
            f"{path} is missing; was the artifact written by an older visionpipe? rerun with --from evaluate"
        )
    return json.loads(path.read_text())
