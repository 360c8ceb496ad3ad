"""Loading a run's config: the framework's typed tree (``pipeline/config.py``) read from YAML,
overrides and ``--data``, then the checks that need the layers above the framework: the model
and its arguments against the models' registry, the distillation student's arguments, the tune
search space, TF Serving's limits on push, and export.gates' keys against the export targets.
Every command and the public API load through here, so a typo fails before any stage runs."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from visionpipe.components.common.search_space import check_space
from visionpipe.components.export import targets
from visionpipe.models.registry import check_args, checked_model_config
from visionpipe.pipeline.config import Config, is_explicit, read_config
from visionpipe.serving.tf_serving_config import check_push_config


def load_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), data: str | Path | None = None
) -> Config:
    """The checked config of a run: ``path`` (a YAML file), ``a.b=value`` overrides and
    ``data`` (a folder or manifest, as ``run --data``), as ``pipeline.config.read_config``
    reads them."""
    config = read_config(path, overrides, data)
    if config.recipe != "auto" or is_explicit(config.explicit, "model.name"):
        # (With recipe auto and no model.name, auto picks the model and checks model.* against it.)
        config = dataclasses.replace(config, model=checked_model_config(config.model))
    distill = config.export.compression.distill
    if distill.student:
        check_args(distill.student, distill.student_args)
    check_push_config(config.push)
    targets.check_config(config.export)
    if config.tune.space:
        check_space(config)
    return config
