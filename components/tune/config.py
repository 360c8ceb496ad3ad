"""The ``tune`` section: the optional KerasTuner search and its space."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """The optional tune stage: a KerasTuner search between validate and train (README: tuning)."""

    enabled: bool = False  # off: the graph is ingest -> validate -> train -> ...
    tuner: Literal["hyperband", "bayesian", "random"] = "hyperband"
    # Config key -> its range. Keys are dotted paths under model, train, input or
    # preprocessing (list items by index: train.augment.policy.1.magnitude); ranges are
    # {log: [lo, hi]}, {range: [lo, hi], step: optional}, {int: [lo, hi], step: optional} or
    # {choice: [a, b, ...]}. Checked against the config tree when the config loads.
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # What trials are ranked by; auto: val_map for multi-label data (the mean over labels of the
    # area under the precision-recall curve), val_accuracy otherwise.
    objective: Literal["auto", "val_accuracy", "val_loss", "val_map"] = "auto"
    max_trials: int = 12
    max_epochs: int = 10  # per trial (Hyperband's largest bracket)
    executions_per_trial: int = 1
    max_seconds: float = 0.0  # wall-clock budget: no trial starts after it; 0 = none
    hyperband_factor: int = 3
    directory: str = ""  # "" = <run.root>/tuning; a folder every process of a distributed search shares

    def resolved(self, multi_label: bool) -> TuneConfig:
        """This config with ``objective`` auto resolved for the data (multi-label or not)."""
        if self.objective != "auto":
            return self
        return dataclasses.replace(self, objective="val_map" if multi_label else "val_accuracy")

    @property
    def maximise(self) -> bool:
        """Whether a higher objective is better (every objective but the loss)."""
        return self.objective != "val_loss"
