"""The ``push`` section: where models are published for TF Serving, rollout and infra validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionpipe.pipeline.typed_tree import ConfigError
from visionpipe.serving.config import BatchingConfig
from visionpipe.serving.tf_serving_config import MAX_WARMUP_RECORDS


@dataclasses.dataclass(frozen=True)
class PushConfig:
    destination: str = ""  # TF Serving models root: <destination>/<name>/<N>; "" = <run.root>/serving
    keep_versions: int = 5  # older versions are deleted, except those a label points at
    warmup_requests: int = 100  # records in assets.extra/tf_serving_warmup_requests (TF Serving reads <= 1000)
    # The new version gets the label canary; stable stays on the previous one until
    # `visionpipe promote`. Off: TF Serving serves the newest version (no labels).
    canary: bool = False
    # Where the server sees <destination> (base_path in models.config is <server_root>/<name>).
    # "" = the destination's own absolute path: right for a tensorflow_model_server or
    # `visionpipe serve` on this machine and for serve.sh / docker-compose.yml, which mount
    # the destination at the same path. Set it to the mount path elsewhere (k8s.yaml: /models).
    server_root: str = ""
    # Matches serve.sh's --allow_version_labels_for_unavailable_models: a new label may name
    # a version the server is still loading (needed when a label is set in the same config
    # change that adds its version).
    allow_labels_for_unavailable_versions: bool = True
    infra_timeout_seconds: int = 300  # the fresh-process warmup replay (and the real server check)
    # Also validate with a real TF Serving when tensorflow_model_server is on PATH or a Docker
    # daemon with the tensorflow/serving image answers; skipped (and recorded so) otherwise.
    real_server_check: bool = True
    batching: BatchingConfig = BatchingConfig()

    def __post_init__(self):
        if not 1 <= self.warmup_requests <= MAX_WARMUP_RECORDS:
            raise ConfigError(
                f"push.warmup_requests must be between 1 and {MAX_WARMUP_RECORDS} (TF Serving reads at most "
                f"{MAX_WARMUP_RECORDS} warmup records); got {self.warmup_requests}"
            )
        if self.keep_versions < 1:
            raise ConfigError(f"push.keep_versions must be at least 1; got {self.keep_versions}")
        if self.infra_timeout_seconds <= 0:
            raise ConfigError(f"push.infra_timeout_seconds must be positive; got {self.infra_timeout_seconds}")

    def serving_root(self, run_root: str) -> Path:
        """Where push publishes models for TF Serving: ``destination``, else <run.root>/serving."""
        return Path(self.destination) if self.destination else Path(run_root).resolve() / "serving"
