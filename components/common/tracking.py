"""Optional experiment tracking with MLflow (``tracking.mlflow_uri``; off by default).

The train stage logs one MLflow run (its effective params, per-epoch metrics, and the model
folder as artifacts); the tune stage logs a parent run with one nested run per trial (the
trial's values, per-epoch metrics, score and checkpoint). A plain path is a local file store:
MLflow 3 only writes one when told it may (``MLFLOW_ALLOW_FILE_STORE``), and a path here is
that choice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from visionpipe.components.common.config import TrackingConfig


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: dotted keys, string values."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@contextlib.contextmanager
def tracked_run(
    config: TrackingConfig, name: str, params: dict[str, Any], nested: bool = False
) -> Iterator[Any | None]:
    """An MLflow run (None when tracking is off) with ``params`` logged."""
    if not config.mlflow_uri:
        yield None
        return
    import mlflow

    uri = config.mlflow_uri
    if "://" not in uri and not uri.startswith("sqlite:"):  # a local folder: a file store
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = Path(uri).resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name=name, nested=nested) as run:
        mlflow.log_params(flatten(params))
        yield run


class EpochMetrics(keras.callbacks.Callback):
    """Logs every epoch's metrics to the active MLflow run."""

    def on_epoch_end(self, epoch, logs=None):
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)


def log_folder(folder: Path) -> None:
    import mlflow

    mlflow.log_artifacts(str(folder))


def log_file(path: Path) -> None:
    import mlflow

    mlflow.log_artifact(str(path))
