"""The Keras dtype policy training runs under, from ``train.mixed_precision``.

``auto`` picks bfloat16 where this machine computes it natively: a CPU with AVX512-BF16 or
AMX-BF16 (where oneDNN's bfloat16 convolutions run 1.8x faster than float32 on airbench94,
BENCHMARKS.md "cifar_94 in bfloat16") and no GPU; everywhere else float32, since bfloat16 on a
CPU without those instructions is emulated and slower.
"""

from __future__ import annotations

import functools
from pathlib import Path

import tensorflow as tf

NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_computes_bfloat16() -> bool:
    """Whether /proc/cpuinfo lists AVX512-BF16 or AMX-BF16 (False where there is no such file)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BFLOAT16_FLAGS)


def training_policy(mixed_precision: str) -> str:
    """The Keras dtype policy name for the ``train.mixed_precision`` setting."""
    if mixed_precision == "auto":
        native = cpu_computes_bfloat16() and not tf.config.list_physical_devices("GPU")
        return "mixed_bfloat16" if native else "float32"
    return "float32" if mixed_precision == "off" else mixed_precision
