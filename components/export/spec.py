"""export: a TF Serving SavedModel and TFLite models (float, full-integer int8), re-evaluated."""

from __future__ import annotations

import dataclasses

from visionpipe.components.export.config import ExportConfig
from visionpipe.components.export.targets import TFLITE_INT8
from visionpipe.pipeline.artifacts import Blessing, Evaluation, Examples, ExportedModel, Model
from visionpipe.pipeline.stage import StageSpec, upstream


@dataclasses.dataclass(frozen=True)
class Inputs:
    model: Model = upstream("train", "model")
    blessing: Blessing = upstream("evaluate", "blessing")
    evaluation: Evaluation = upstream("evaluate", "evaluation")
    # The train split calibrates int8; the evaluated split re-scores every runtime.
    examples: Examples = upstream("ingest", "examples")


@dataclasses.dataclass(frozen=True)
class Outputs:
    exported_model: ExportedModel


@dataclasses.dataclass(frozen=True)
class Params:
    export: ExportConfig
    seed: int


SPEC = StageSpec(
    name="export",
    inputs=Inputs,
    outputs=Outputs,
    params=lambda config: Params(export=config.export, seed=config.seed),
    executor="visionpipe.components.export.executor:run",
    gate=lambda inputs: inputs.blessing.not_blessed_reason(),
    key_metric=f"{TFLITE_INT8.name}_accuracy",
)
