"""push: copies a blessed SavedModel into a TF Serving model base path as a new version."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionpipe.components.evaluate.spec import not_blessed_reason
from visionpipe.pipeline.artifacts import Blessing, ExportedModel, PushedModel
from visionpipe.pipeline.config import Config
from visionpipe.pipeline.stage import StageSpec, upstream


@dataclasses.dataclass(frozen=True)
class Inputs:
    exported_model: ExportedModel = upstream("export", "exported_model")
    blessing: Blessing = upstream("evaluate", "blessing")


@dataclasses.dataclass(frozen=True)
class Outputs:
    pushed_model: PushedModel


@dataclasses.dataclass(frozen=True)
class Params:
    destination: str  # TF Serving --model_base_path's parent: models land in <destination>/<name>/<N>


def _params(config: Config) -> Params:
    destination = config.push.destination or str(Path(config.run.root).resolve() / "serving")
    return Params(destination=destination)


SPEC = StageSpec(
    name="push",
    inputs=Inputs,
    outputs=Outputs,
    params=_params,
    executor="visionpipe.components.push.executor:run",
    gate=lambda inputs: not_blessed_reason(inputs.blessing),
    key_metric="version",
)
