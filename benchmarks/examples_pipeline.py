"""The training pipeline over an ingested Examples folder, built by visionpipe's own functions as
the train stage builds it: what benchmarks that time the pipeline or a fit feed on."""

from __future__ import annotations

import json
from pathlib import Path


def train_pipeline(examples: Path, config, seed: int, cache=None):
    """(dataset, classes, train images, spec) for ``config``; ``cache`` (a ``CacheChoice``) or,
    when None, the one the input budgets choose (its files under the run root's ``cache``)."""
    from visionpipe.components.train.augment import build_policy
    from visionpipe.components.train.input_pipeline import choose_cache, training_dataset
    from visionpipe.models.classifier import preprocessing_spec

    classes = json.loads((examples / "classes.json").read_text())["classes"]
    count = sum(json.loads((examples / "split_stats.json").read_text())["train"]["classes"].values())
    spec = preprocessing_spec(config.preprocessing, None, None)
    if cache is None:
        cache = choose_cache(config.input, count, spec, examples.parent.parent / "cache", "benchmark")
    policy = build_policy(config.train.augment, config.seed)
    batch = config.train.batch_size
    ds = training_dataset(examples, spec, len(classes), batch, config.input, seed, cache, policy, num_images=count)
    return ds, classes, count, spec, cache
