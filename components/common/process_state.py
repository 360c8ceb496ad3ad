"""The process-wide Keras and TensorFlow settings a stage may change, put back when it ends.

Training sets the global dtype policy (mixed precision), the global seeds
(``keras.utils.set_random_seed``) and, for deterministic input, TensorFlow's op determinism.
Those are settings of the whole process: left behind, they change what runs next in the same
process: the next stage, the next cell of a user's notebook, the next test (a test whose model
drew its weights from a seed some earlier test had left was the cause of an order-dependent
failure). ``restored_afterwards`` snapshots them and restores them on the way out, on success
or failure alike.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras.src.backend.common import global_state
from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
from tensorflow.python.eager import context
from tensorflow.python.framework import config as tf_config


@dataclass(frozen=True)
class Snapshot:
    dtype_policy: Any
    floatx: str
    image_data_format: str
    epsilon: float
    op_determinism: bool
    python_random: Any
    numpy_random: Any
    keras_seed: int | None
    keras_seed_generator: Any
    tf_seed: int | None


def snapshot() -> Snapshot:
    """The settings as they are now."""
    return Snapshot(
        dtype_policy=keras.config.dtype_policy(),
        floatx=keras.config.floatx(),
        image_data_format=keras.config.image_data_format(),
        epsilon=keras.config.epsilon(),
        op_determinism=tf_config.is_op_determinism_enabled(),
        python_random=random.getstate(),
        numpy_random=np.random.get_state(),
        keras_seed=global_state.get_global_attribute(GLOBAL_RANDOM_SEED),
        keras_seed_generator=global_state.get_global_attribute(GLOBAL_SEED_GENERATOR),
        tf_seed=context.global_seed(),
    )


def restore(saved: Snapshot) -> None:
    """Puts every setting of ``saved`` back."""
    keras.config.set_dtype_policy(saved.dtype_policy)
    keras.config.set_floatx(saved.floatx)
    keras.config.set_image_data_format(saved.image_data_format)
    keras.config.set_epsilon(saved.epsilon)
    if tf_config.is_op_determinism_enabled() != saved.op_determinism:
        (tf_config.enable_op_determinism if saved.op_determinism else tf_config.disable_op_determinism)()
    random.setstate(saved.python_random)
    np.random.set_state(saved.numpy_random)
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, saved.keras_seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, saved.keras_seed_generator)
    if context.global_seed() != saved.tf_seed:
        context.set_global_seed(saved.tf_seed)


@contextlib.contextmanager
def restored_afterwards() -> Iterator[None]:
    """Runs the body, then restores the settings it found, whether the body failed or not."""
    saved = snapshot()
    try:
        yield
    finally:
        restore(saved)
