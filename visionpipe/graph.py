"""The stage graph: which stages exist, in what order, and which the config leaves out.
Only specs are wired here."""

from __future__ import annotations

from visionpipe.components.data_quality.spec import SPEC as DATA_QUALITY
from visionpipe.components.evaluate.spec import SPEC as EVALUATE
from visionpipe.components.export.spec import SPEC as EXPORT
from visionpipe.components.ingest.spec import SPEC as INGEST
from visionpipe.components.push.spec import SPEC as PUSH
from visionpipe.components.train.spec import SPEC as TRAIN
from visionpipe.components.tune.spec import SPEC as TUNE
from visionpipe.components.validate.spec import SPEC as VALIDATE
from visionpipe.config import Config
from visionpipe.pipeline.stage import StageSpec, check_wiring

ALL_STAGES = [INGEST, VALIDATE, TUNE, TRAIN, EVALUATE, DATA_QUALITY, EXPORT, PUSH]
check_wiring(ALL_STAGES)  # every upstream(...) names an earlier stage's output of its type
# Optional stages, and when the config includes them.
OPTIONAL = {
    TUNE.name: lambda config: config.tune.enabled,
    DATA_QUALITY.name: lambda config: config.data_quality.enabled,
}


def stages(config: Config, asked: str | None = None) -> list[StageSpec]:
    """The graph of a run: every stage but the optional ones the config leaves out; a stage
    asked for by name (``--stage tune``) is always in."""
    return [s for s in ALL_STAGES if s.name not in OPTIONAL or OPTIONAL[s.name](config) or s.name == asked]


def stage_names() -> list[str]:
    return [s.name for s in ALL_STAGES]
