"""train.mixed_precision: auto trains in bfloat16 only where the CPU computes it natively."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionpipe.components.train import precision
from visionpipe.config import load_config


@pytest.mark.parametrize(("native", "policy"), [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_is_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch, native, policy):
    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: native)
    assert precision.training_policy("auto") == policy


def test_explicit_settings_are_kept():
    assert precision.training_policy("off") == "float32"
    assert precision.training_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert precision.training_policy("mixed_float16") == "mixed_float16"


def test_the_cpu_flags_are_read_from_proc_cpuinfo():
    flags = open("/proc/cpuinfo").read().split()
    assert precision.cpu_computes_bfloat16() == any(f in flags for f in precision.NATIVE_BFLOAT16_FLAGS)


def test_cifar_94_trains_in_bfloat16_where_the_cpu_computes_it():
    config = load_config(Path(__file__).parents[2] / "configs" / "cifar_94.yaml")
    assert config.train.mixed_precision == "auto"
