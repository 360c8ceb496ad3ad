"""The stage graph: which stages exist and in what order. Only specs are wired here."""

from __future__ import annotations

from visionpipe.components.evaluate.spec import SPEC as EVALUATE
from visionpipe.components.export.spec import SPEC as EXPORT
from visionpipe.components.ingest.spec import SPEC as INGEST
from visionpipe.components.push.spec import SPEC as PUSH
from visionpipe.components.train.spec import SPEC as TRAIN
from visionpipe.components.validate.spec import SPEC as VALIDATE

STAGES = [INGEST, VALIDATE, TRAIN, EVALUATE, EXPORT, PUSH]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]
