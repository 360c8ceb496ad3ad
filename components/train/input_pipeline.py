"""The training input pipeline: records -> 8-bit pixels -> cache -> shuffle -> batch -> augment.

Decoded images are cached as uint8 (a quarter of float32), so a split of CIFAR-10 size
stays in memory and later epochs skip reading and decoding entirely. Shuffling and batching
move those compact pixels; scaling to [0, 1], augmentation and mixing run once per batch,
vectorised, in a parallel map that overlaps the training step. ``input.deterministic`` trades
that parallelism for the same batches on every run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

from visionpipe.components.common.dataset import AUTOTUNE, cached, file_cache_written, float_batch, pixels
from visionpipe.components.train.augment import AugmentPolicy
from visionpipe.components.train.config import InputConfig
from visionpipe.data.records import prefetched
from visionpipe.models.preprocessing import PreprocessingSpec

CACHE_PREFIX = "tfdata-"  # file caches: <cache root>/<worker>/tfdata-<key>-<split> (``dataset.cached``)


def cache_root(cache_dir: str, run_root: Path) -> Path:
    """Where file caches go: ``input.cache_dir``, or ``cache`` under the run root."""
    return Path(cache_dir) if cache_dir else run_root / "cache"


class CacheChoice(NamedTuple):
    kind: str  # memory | file | off
    prefix: str  # file caches: a folder <prefix>-<split>
    megabytes: float  # decoded size of the cached splits
    reason: str

    def for_split(self, split: str) -> str | None:
        """The ``dataset.cached`` argument for one split: None (no cache), "" (memory) or a folder."""
        return {"memory": "", "file": self.folder(split)}.get(self.kind)

    def folder(self, split: str) -> str:
        """A file cache's folder for one split."""
        return f"{self.prefix}-{split}"


def choose_cache(
    config: InputConfig, num_images: int, spec: PreprocessingSpec, cache_dir: Path, data_key: str
) -> CacheChoice:
    """Memory when the decoded images fit the memory budget, else files within the file budget.

    ``data_key`` names the data version, so a file cache is never read for other data.
    """
    megabytes = num_images * math.prod(spec.input_shape) / 2**20
    size = f"{megabytes:,.0f} MB of decoded 8-bit images"
    key = hashlib.sha256(f"{data_key}|{spec}".encode()).hexdigest()[:16]
    prefix = str(Path(cache_dir) / f"{CACHE_PREFIX}{key}")
    if config.cache == "off":
        return CacheChoice("off", prefix, megabytes, "input.cache=off")
    if config.cache == "memory" or (config.cache == "auto" and megabytes <= config.memory_budget_mb):
        return CacheChoice("memory", prefix, megabytes, f"{size} (memory budget {config.memory_budget_mb:,} MB)")
    if config.cache == "file" or megabytes <= config.file_budget_mb:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        choice = CacheChoice("file", prefix, megabytes, "")
        # The first run on this data decodes every image before its first epoch: say so.
        when = "read" if file_cache_written(choice.folder("train")) else "written now, before the first epoch"
        return choice._replace(reason=f"{size} in {cache_dir}, {when} (file budget {config.file_budget_mb:,} MB)")
    return CacheChoice("off", prefix, megabytes, f"{size} exceed both budgets: decoding every epoch")


BOUNDED_SHUFFLE_BUFFER = 10_000


def shuffle_buffer(config: InputConfig, cache: CacheChoice, num_images: int | None) -> int:
    """``input.shuffle_buffer``, or for 0 the whole split when it sits in memory anyway."""
    if config.shuffle_buffer:
        return config.shuffle_buffer
    return num_images if cache.kind == "memory" and num_images else BOUNDED_SHUFFLE_BUFFER


def training_dataset(
    examples_dir: Path,
    spec: PreprocessingSpec,
    num_classes: int,
    batch_size: int,
    config: InputConfig,
    seed: int,
    cache: CacheChoice,
    policy: AugmentPolicy | None = None,
    class_weights: Sequence[float] | None = None,
    resample_from: Sequence[float] | None = None,
    num_images: int | None = None,
    multi_label: bool = False,
    endless: bool = False,
) -> tf.data.Dataset:
    """Batches of (images, one-hot labels) or, with ``class_weights``, (images, labels, weights);
    multi-hot labels for ``multi_label`` records.

    ``resample_from`` (the train split's class frequencies) resamples an endless stream to
    equal class frequencies; ``endless`` repeats the split, reshuffled each pass, before
    batching, so batches run on across passes. For both the caller sets the steps per epoch.
    ``num_images`` is the train split's size, as ``pixels`` takes it; a policy that
    ``needs_passes`` needs it and ``endless``.
    """
    deterministic, multi_hot = config.deterministic, num_classes if multi_label else 0
    ds = pixels(examples_dir, "train", spec, True, seed, deterministic, num_images, multi_hot)
    ds = cached(ds, cache.for_split("train"))
    ds = ds.shuffle(shuffle_buffer(config, cache, num_images), seed=seed, reshuffle_each_iteration=True)
    if resample_from is not None:
        ds = (
            ds.repeat()
            .rejection_resample(
                lambda image, label: tf.cast(label, tf.int32),
                [1 / num_classes] * num_classes,
                initial_dist=list(resample_from),
                seed=seed,
            )
            .map(lambda _, pair: pair)
        )
    elif endless:
        ds = ds.repeat()
    weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def finish(images, labels, passes=None):
        images, labels = float_batch(images, labels, num_classes)
        if policy is not None:
            images, labels = policy.on_batch(images, labels, passes)
        if weights is None:
            return images, labels
        return images, labels, tf.reduce_sum(labels * weights, axis=-1)  # mixed labels mix weights

    # Augmentation draws from shared random state, so only one call at a time keeps it
    # reproducible; otherwise batches are augmented in parallel, in whichever order is ready.
    ds = ds.batch(batch_size)
    if policy is not None and policy.needs_passes:
        if not endless or resample_from is not None or not num_images:
            raise ValueError("a policy that needs passes needs an endless stream of a split of known size")
        ds = ds.enumerate().map(lambda n, batch: (*batch, _passes(n, tf.shape(batch[1])[0], batch_size, num_images)))
    ds = ds.map(finish) if deterministic else ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=False)
    return prefetched(ds, deterministic)


def _passes(batch_number: tf.Tensor, count: tf.Tensor, batch_size: int, num_images: int) -> tf.Tensor:
    """Each image's pass over the split, for the ``batch_number``-th batch of an endless stream."""
    first = batch_number * batch_size
    return (first + tf.range(tf.cast(count, tf.int64), dtype=tf.int64)) // num_images


def class_frequencies(class_counts: dict[str, int], classes: Sequence[str]) -> list[float]:
    total = sum(class_counts.get(c, 0) for c in classes)
    return [class_counts.get(c, 0) / total for c in classes]


def balancing_weights(class_counts: dict[str, int], classes: Sequence[str]) -> list[float]:
    """n / (k * n_c): every class contributes equally to the loss; a missing class gets 0."""
    frequencies = class_frequencies(class_counts, classes)
    return [1 / (len(classes) * f) if f else 0.0 for f in frequencies]
