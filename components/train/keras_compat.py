"""Two fixes Keras 3's ``fit`` needs under MultiWorkerMirroredStrategy, applied explicitly.

Keras 3.15 fails at the first step of multi-worker training (tensorflow#72388, keras#20585,
open as of Keras 3.15):

1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces the first distributed batch with a
   cross-worker MEAN to learn its shapes; with collective ops that reduction of a tuple of
   PerReplica values fails ("Attempt to convert a value (PerReplica...)"). Shapes need only
   this worker's own replica: ``experimental_local_results(x)[0]``.
2. ``reduce_per_replica`` reduces a multi-worker metric with ``axis=0``, which fails for a
   scalar ("Invalid reduction dimension 0 for input with 0 dimensions"); scalars take
   ``axis=None``.

``apply()`` patches only the Keras versions listed in ``NEEDED_IN`` and says what it did; the
canary test (tests/components/test_keras_compat.py) fails once a Keras release no longer
breaks, so the fix is removed rather than carried silently.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

NEEDED_IN = ("3.15.",)  # Keras versions known to need the fixes (checked by the canary test)
_applied = False


def needed(version: str = keras.__version__) -> bool:
    return version.startswith(NEEDED_IN)


def apply() -> str:
    """Patches this process's Keras for multi-worker ``fit``; returns what was done."""
    global _applied
    if not needed():
        return f"Keras {keras.__version__} needs no multi-worker fixes"
    if not _applied:
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
        original = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
                return tree.map_structure(
                    lambda v: strategy.reduce("MEAN", v, axis=0 if v.shape.rank else None), values
                )
            return original(values, strategy, reduction)

        tf_trainer.reduce_per_replica = reduce_per_replica
        _applied = True
    return f"Keras {keras.__version__}: multi-worker fit fixes applied (tensorflow#72388, keras#20585)"


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tree.map_structure(
                lambda x: (
                    self.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues)
                    else x
                ),
                batch,
            )
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)
