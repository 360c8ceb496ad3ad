"""Running visionpipe's pipeline: the stage graph this config implies (``graph.py``) handed to
the framework's runner, which knows no stage itself."""

from __future__ import annotations

from visionpipe.config import Config
from visionpipe.graph import stage_names, stages
from visionpipe.pipeline import cluster
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.output import Output
from visionpipe.pipeline.runner import RunResult, run_graph


def run_pipeline(
    config: Config,
    only: str | None = None,
    start: str | None = None,
    force: bool = False,
    command: str = "",
    output: Output | None = None,
    override_gate: str = "",
) -> RunResult:
    """Runs the whole pipeline, one stage (``only``) or a stage onward (``start``); the other
    arguments are ``pipeline.runner.run_graph``'s."""
    for name in (only, start):
        if name is not None and name not in stage_names():
            raise UserError(f"unknown stage {name!r}; stages are: {', '.join(stage_names())}")
    graph = stages(config, asked=only or start)
    return run_graph(
        config,
        graph,
        only=only,
        start=start,
        force=force,
        command=command,
        output=output,
        override_gate=override_gate,
        cluster_task=cluster.non_chief_task(config.train.strategy),
    )
