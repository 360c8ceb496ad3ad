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
    # Increasing, ending at max_batch_size; () = any size, no padding. A partial batch is padded up
    # to the next allowed size and the padding is computed too: on a CPU, 8, 16, 32 cost 1.25-2x
    # the images/s (BENCHMARKS.md), and TF Serving's batching guide leaves it unset on CPUs.
    allowed_batch_sizes: tuple[int, ...] = ()

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
