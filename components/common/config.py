"""Settings several stages share: experiment tracking (train and tune log to MLflow)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Optional experiment tracking: every tune trial and train run logs its params, metrics and
    model to MLflow (``pip install visionpipe[tracking]``)."""

    mlflow_uri: str = ""  # "" = off; a local path (a file store), sqlite:///..., or an http(s):// server
    experiment: str = "visionpipe"
