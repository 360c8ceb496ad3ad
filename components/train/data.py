"""The train stage's data: the preprocessing spec, the train and val datasets, the epoch length
and the augmentation policy, built once from the stage's inputs. The train executor and the
tune stage's trials use the same ``TrainingData`` (so trials never decode images again).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.train.augment import AugmentPolicy, build_policy
from visionpipe.components.train.input_pipeline import (
    CacheChoice,
    balancing_weights,
    cache_root,
    choose_cache,
    class_frequencies,
    shuffle_buffer,
    training_dataset,
)
from visionpipe.components.train.spec import Inputs, Params
from visionpipe.models.classifier import preprocessing_spec
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext


@dataclasses.dataclass
class TrainingData:
    examples: Path  # the Examples folder the datasets read
    spec: PreprocessingSpec
    classes: list[str]  # multi-label: the labels
    multi_label: bool  # labels are multi-hot vectors: the model gets a sigmoid head
    counts: dict[str, int]
    train: tf.data.Dataset
    val: tf.data.Dataset | None  # None when there is no val split
    steps_per_epoch: int
    fixed_steps: bool  # the train stream is endless: fit needs steps_per_epoch
    policy: AugmentPolicy | None
    cache: CacheChoice

    def sample_images(self, count: int) -> np.ndarray:
        """Up to ``count`` training images as float [0, 1] arrays, without augmentation (for
        data-dependent initialisation, e.g. airbench's whitening layer)."""
        batches = image_dataset(
            self.examples, "train", self.spec, len(self.classes), batch_size=256, multi_label=self.multi_label
        )
        images = np.concatenate([x.numpy() for x, _ in batches.take(math.ceil(count / 256))])
        return images[:count]


def training_data(inputs: Inputs, params: Params, ctx: StageContext, worker: str = "") -> TrainingData:
    """The train and val datasets and what they were made from. ``worker`` (e.g. "worker-1" in
    multi-worker training) gives each task its own file cache: tasks that share the run root
    read different shards, and tf.data lets only one process write a cache file."""
    cfg = params.train
    statistics = inputs.statistics
    spec = preprocessing_spec(params.preprocessing, statistics.pixel_mean, statistics.pixel_std)
    classes = inputs.examples.classes
    multi_label = inputs.examples.multi_label
    counts = statistics.counts
    examples = inputs.examples.path
    cache = choose_cache(
        params.input,
        counts["train"] + counts["val"],
        spec,
        cache_root(params.input.cache_dir, ctx.run_root) / worker,
        inputs.examples.fingerprint or inputs.examples.uri,
    )
    policy = build_policy(cfg.augment, params.seed)
    class_weights, resample_from = _balance(params, statistics, classes, multi_label)
    endless = _endless(cfg.steps_per_epoch, policy, resample_from)
    ctx.log(
        f"{counts['train']} train / {counts['val']} val images, "
        f"{len(classes)} {'labels (multi-label)' if multi_label else 'classes'}, cache {cache.kind}: "
        f"{cache.reason}, shuffle buffer {shuffle_buffer(params.input, cache, counts['train']):,} images"
    )
    if policy is not None:
        ctx.log(
            f"augmentation: {', '.join(step.op for step in cfg.augment.policy)} (placement {cfg.augment.placement})"
        )
    train = training_dataset(
        examples,
        spec,
        len(classes),
        cfg.batch_size,
        params.input,
        params.seed,
        cache,
        policy,
        class_weights,
        resample_from,
        num_images=counts["train"],
        multi_label=multi_label,
        endless=endless,
    )
    val = None
    if counts["val"]:
        val = image_dataset(
            examples,
            "val",
            spec,
            len(classes),
            cfg.batch_size,
            cache=cache.for_split("val"),
            num_images=counts["val"],
            multi_label=multi_label,
        )
    steps = cfg.steps_per_epoch or math.ceil(counts["train"] / cfg.batch_size)
    fixed = endless or resample_from is not None
    return TrainingData(examples, spec, classes, multi_label, counts, train, val, steps, fixed, policy, cache)


def _endless(steps_per_epoch: int, policy: AugmentPolicy | None, resample_from) -> bool:
    """Whether the train stream repeats the split before batching: for fixed-length epochs, and
    for alternating flips (which count passes), so batches run on across passes."""
    alternating = policy is not None and policy.needs_passes
    if alternating and resample_from is not None:
        raise UserError(
            "train.augment.policy's flip_alternating flips each image on every other pass over the data, but "
            "train.class_balance resample draws images with replacement: use flip_horizontal with it"
        )
    return bool(steps_per_epoch) or alternating


def _balance(
    params: Params, statistics, classes: list[str], multi_label: bool
) -> tuple[list[float] | None, list[float] | None]:
    """(class weights, class frequencies to resample from) as ``train.class_balance`` asks."""
    if params.train.class_balance == "none":
        return None, None
    if multi_label:  # an image's weight would have to be one number for all of its labels
        raise UserError(
            f"train.class_balance {params.train.class_balance} weighs or resamples images by their one class; "
            "multi-label images carry several: set it to none (train.loss: focal lifts the rare labels)"
        )
    counts = statistics.class_counts
    if not any(counts.get(c) for c in classes):
        raise UserError(
            "train.class_balance needs per-class counts of the train split; rerun validate "
            "(`visionpipe run --stage validate --force`)"
        )
    if params.train.class_balance == "weights":
        return balancing_weights(counts, classes), None
    return None, class_frequencies(counts, classes)
