"""``push.batching``: TF Serving's server-side batching, checked against TF Serving's own rules."""

from __future__ import annotations

import dataclasses

from visionpipe.pipeline.typed_tree import ConfigError
from visionpipe.serving.tf_serving_config import batching_problems


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's server-side batching (``batching.config``, ``--enable_batching``)."""

    enabled: bool = True
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000  # a partial batch waits at most this long for company
    num_batch_threads: int = 2  # about the cores the server may use
    max_enqueued_batches: int = 100
    allowed_batch_sizes: tuple[int, ...] = (8, 16, 32)  # increasing, ending at max_batch_size; () = any

    def __post_init__(self):
        problems = batching_problems(
            self.max_batch_size,
            self.allowed_batch_sizes,
            self.batch_timeout_micros,
            self.num_batch_threads,
            self.max_enqueued_batches,
        )
        if problems:
            raise ConfigError(f"push.batching: {problems[0]}")
