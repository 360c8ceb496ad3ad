"""What the training-step benchmarks share: their command-line options, and one in-memory
batch of random images (so the input pipeline costs nothing) with the models built for it."""

from __future__ import annotations

import argparse
import json


def training_args(parser: argparse.ArgumentParser, *, batch: int, steps: int, repeats: int) -> None:
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--repeats", type=int, default=repeats)


def one_batch(size: int, batch: int):
    """(PreprocessingSpec, a dataset repeating one batch of ``batch`` random size x size images)."""
    import tensorflow as tf

    from visionpipe.models.preprocessing import PreprocessingSpec

    spec = PreprocessingSpec(size, size, 3, "stretch", (0.5,) * 3, (0.25,) * 3)
    images, labels = tf.random.uniform([batch, size, size, 3]), tf.one_hot(tf.zeros([batch], tf.int32), 10)
    return spec, tf.data.Dataset.from_tensors((images, labels)).repeat()


def model_config(text: str):
    """``name`` or ``name:{"arg": value}`` -> a checked ModelConfig."""
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.registry import check_args

    name, _, raw = text.partition(":")
    return ModelConfig(name=name, args=check_args(name, json.loads(raw) if raw else {}))
