"""push: publishes a blessed, infra-validated SavedModel to a TF Serving models root.

Inputs: the export (the SavedModel and TFLite files), evaluate's Blessing (the gate) and
Evaluation (its accuracy is recorded with the version, for ``visionpipe promote``), and the
Examples (real val images for the warmup requests). Outputs: the PushedModel and the
InfraBlessing of the version (push refuses a version that is not infra-blessed).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from visionpipe.components.push.config import PushConfig
from visionpipe.pipeline.artifacts import Blessing, Evaluation, Examples, ExportedModel, InfraBlessing, PushedModel
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY
from visionpipe.pipeline.stage import StageSpec, upstream

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


@dataclasses.dataclass(frozen=True)
class Inputs:
    exported_model: ExportedModel = upstream("export", "exported_model")
    blessing: Blessing = upstream("evaluate", "blessing")
    evaluation: Evaluation = upstream("evaluate", "evaluation")
    examples: Examples = upstream("ingest", "examples")


@dataclasses.dataclass(frozen=True)
class Outputs:
    pushed_model: PushedModel
    infra_blessing: InfraBlessing


@dataclasses.dataclass(frozen=True)
class Params:
    # The models root: models land in <destination>/<name>/<N>, configs beside them. Out of the key:
    # push.destination (in ``push``) is the setting; its default is under run.root, which may move.
    destination: str = dataclasses.field(metadata=OUTSIDE_KEY)
    push: PushConfig


def _params(config: Config) -> Params:
    return Params(destination=str(config.push.serving_root(config.run.root)), push=config.push)


SPEC = StageSpec(
    name="push",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.push.executor:run",
    gate=lambda inputs: inputs.blessing.not_blessed_reason(),
    key_metric="version",
)
