"""export: a TF Serving SavedModel and TFLite models (float, full-integer int8), re-evaluated."""

from __future__ import annotations

import dataclasses

from visionpipe.components.export.config import ExportConfig
from visionpipe.components.export.targets import TFLITE_INT8
from visionpipe.pipeline.artifacts import Blessing, DataQuality, Evaluation, Examples, ExportedModel, Model
from visionpipe.pipeline.stage import StageSpec, upstream


@dataclasses.dataclass(frozen=True)
class Inputs:
    model: Model = upstream("train", "model")
    blessing: Blessing = upstream("evaluate", "blessing")
    evaluation: Evaluation = upstream("evaluate", "evaluation")
    # The train split calibrates int8; the evaluated split re-scores every runtime.
    examples: Examples = upstream("ingest", "examples")
    # Its leakage anomaly, when blocking, stops export as a failed gate does (None: not in the graph).
    data_quality: DataQuality | None = upstream("data_quality", "data_quality", optional=True)


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
    gate=lambda inputs: (
        inputs.blessing.not_blessed_reason() or (inputs.data_quality.blocking_reason() if inputs.data_quality else None)
    ),
    key_metric=f"{TFLITE_INT8.name}_accuracy",
)
