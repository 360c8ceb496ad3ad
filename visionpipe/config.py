"""The one typed configuration tree of a visionpipe run, composed of the sections each layer
owns, and loading it: YAML, ``--set a.b=value`` overrides and ``--data``, then the checks that
need the layers themselves (the model and its arguments against the models' registry, the
distillation student, the tune search space, the export targets). Every command and the public
API load through here, so a typo fails before any stage runs."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Literal

from visionpipe.components.common.config import TrackingConfig
from visionpipe.components.common.search_space import check_space
from visionpipe.components.data_quality.config import DataQualityConfig
from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.components.export import targets
from visionpipe.components.export.config import ExportConfig
from visionpipe.components.ingest.config import MANIFEST_SUFFIXES, DataConfig
from visionpipe.components.push.config import PushConfig
from visionpipe.components.train.config import InputConfig, TrainConfig
from visionpipe.components.tune.config import TuneConfig
from visionpipe.components.validate.config import ValidateConfig
from visionpipe.models.config import ModelConfig, PreprocessingConfig
from visionpipe.models.registry import check_args, checked_model_config
from visionpipe.pipeline.config import BeamConfig, ConfigError, RunConfig, build, given_tree, is_explicit
from visionpipe.pipeline.fingerprint import OUTSIDE_KEY


@dataclasses.dataclass(frozen=True)
class Config:
    run: RunConfig = RunConfig()
    seed: int = 42
    # manual: every setting as configured, defaults for the keys left out. auto: the train stage
    # chooses image size, model, batch size, epochs, augmentation and regularisation from what
    # ingest and validate measured and from train.time_budget_minutes (components/train/auto.py);
    # every key the YAML or an override sets keeps its value.
    recipe: Literal["manual", "auto"] = "manual"
    data: DataConfig = DataConfig()
    beam: BeamConfig = BeamConfig()
    validate: ValidateConfig = ValidateConfig()
    tune: TuneConfig = TuneConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    data_quality: DataQualityConfig = DataQualityConfig()
    export: ExportConfig = ExportConfig()
    push: PushConfig = PushConfig()
    tracking: TrackingConfig = dataclasses.field(default=TrackingConfig(), metadata=OUTSIDE_KEY)  # rerun nothing
    # Filled by load_config, not set by hand: the dotted keys the YAML file and the overrides
    # gave (e.g. train.epochs, model.args.width), which recipe: auto leaves as they are.
    explicit: tuple[str, ...] = ()


def load_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), data: str | Path | None = None
) -> Config:
    """Reads a YAML file (if given), applies ``a.b=value`` overrides, type-checks the result
    and checks what needs the layers (the model, the student, the search space, the targets).

    ``data`` (the CLI's ``--data``) is a folder of class sub-folders, in any layout ingest
    accepts, or a ``.csv``/``.jsonl`` manifest: it sets ``data.source`` and ``data.path`` over
    the YAML's, ``run.root`` defaults to ``visionpipe_runs/<its name>``, and without a YAML
    file the recipe is ``auto``. Any key the YAML or an override sets wins over those defaults.
    """
    under, over = _data_defaults(os.fspath(data), with_yaml=path is not None) if data is not None else ({}, {})
    config = build(Config, given_tree(path, overrides, under, over), "")
    if config.recipe == "auto" and not is_explicit(config.explicit, "preprocessing.channels"):
        # Ingest converts odd images to preprocessing.channels and measures the pixel statistics
        # in it before auto has seen the data: colour keeps every choice open (auto still trains
        # all-gray data in one channel).
        config = dataclasses.replace(config, preprocessing=dataclasses.replace(config.preprocessing, channels=3))
    if config.recipe != "auto" or is_explicit(config.explicit, "model.name"):
        # (With recipe auto and no model.name, auto picks the model and checks model.* against it.)
        config = dataclasses.replace(config, model=checked_model_config(config.model))
    distill = config.export.compression.distill
    if distill.student:
        check_args(distill.student, distill.student_args)
    targets.check_config(config.export)
    if config.tune.space:
        check_space(config)
    return config


def _data_defaults(data: str, with_yaml: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``load_config(data=...)`` sets under the YAML (where runs go, the recipe) and over it
    (the data section: ``--data`` names the data)."""
    remote = "://" in data  # gs://, s3://: Beam's filesystems read them; a Path would mangle them
    if not remote and not Path(data).exists():
        raise ConfigError(f"data {data}: no such folder or manifest file")
    manifest = data.lower().endswith(MANIFEST_SUFFIXES) and (remote or Path(data).is_file())
    name = data.rstrip("/").rsplit("/", 1)[-1] if remote else Path(data).resolve().name
    folder = name.rsplit(".", 1)[0] if manifest else name
    under: dict[str, Any] = {"run": {"root": str(Path(RunConfig.root) / folder)}}
    if not with_yaml:
        under["recipe"] = "auto"
    return under, {"data": {"source": "manifest" if manifest else "folder", "path": data}}
