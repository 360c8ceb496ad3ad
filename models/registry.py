"""Model registry: builders register under a name and own their arguments.

A builder is a readable top-to-bottom Keras function
``build(input_shape, num_classes, *, <its own keyword arguments>, keras=None)`` that returns an
uncompiled model mapping images to class probabilities. ``keras`` is the Keras module to build
with (None: Keras 3), so the same builder can build a tf_keras twin for the compression tools.
Builder modules import no Keras at load time, so the config can check ``model.args`` against
a builder's signature (``check_args``) without loading TensorFlow.

``register`` also records what the model expects of its input: ``normalize=True`` models get
the train split's mean/std normalisation in front (see ``models.classifier``); ImageNet
backbones take [0, 1] images and apply their own preprocessing instead. ``pretrained`` names
the ``model.weights`` values a model accepts besides ``none`` and a weights file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from visionpipe.models.config import ModelConfig
from visionpipe.models.head import use_sigmoid_head
from visionpipe.pipeline.config import ConfigError, coerce

# Passed by visionpipe, not set in model.args: the Keras module, and model.weights.
RESERVED_ARGS = ("keras", "weights")


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[..., Any]
    normalize: bool  # the classifier puts the train split's mean/std normalisation in front
    pretrained: tuple[str, ...]  # model.weights values besides none / a path, e.g. ("imagenet",)

    def arguments(self) -> dict[str, inspect.Parameter]:
        """The builder's own keyword arguments, in order."""
        return {
            name: p
            for name, p in inspect.signature(self.build).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in RESERVED_ARGS
        }


_ENTRIES: dict[str, Entry] = {}


def register(name: str, *, normalize: bool = True, pretrained: tuple[str, ...] = ()) -> Callable:
    def decorate(build: Callable) -> Callable:
        if name in _ENTRIES:
            raise ValueError(f"model {name!r} is registered twice")
        _ENTRIES[name] = Entry(name, build, normalize, pretrained)
        return build

    return decorate


def model_names() -> list[str]:
    return sorted(_ENTRIES)


def entry(name: str) -> Entry:
    if name not in _ENTRIES:
        raise ConfigError(f"unknown model {name!r} (model.name); registered models: {', '.join(model_names())}")
    return _ENTRIES[name]


def check_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``model.args`` checked against the builder's signature and types; returns them coerced
    (e.g. a YAML list to a tuple). Raises ConfigError naming the model's valid arguments."""
    model = entry(name)
    parameters = model.arguments()
    hints = typing.get_type_hints(model.build)
    unknown = [k for k in args if k not in parameters]
    if unknown:
        valid = ", ".join(f"{n} (default {p.default!r})" for n, p in parameters.items()) or "none"
        raise ConfigError(f"unknown argument model.args.{unknown[0]} for model {name!r}; its arguments: {valid}")
    return {k: coerce(hints[k], v, f"model.args.{k}") for k, v in args.items()}


def checked_model_config(model: ModelConfig) -> ModelConfig:
    """model.name, model.args and model.weights against the registry, so a typo fails when the
    config loads, before any stage runs; returns the config with its arguments coerced."""
    args = check_args(model.name, model.args)
    pretrained = entry(model.name).pretrained
    if model.weights != "none" and model.weights.isidentifier() and model.weights not in pretrained:
        offered = ", ".join(pretrained) or "no pretrained weights"
        raise ConfigError(
            f"model.weights {model.weights!r} is not offered by model {model.name!r} ({offered}); use none, "
            "one of those, or a path to a weights file"
        )
    return dataclasses.replace(model, args=args)


def create_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    args: dict[str, Any] | None = None,
    weights: str = "none",
    keras=None,
    multi_label: bool = False,
):
    """Builds a registered model with its (checked) arguments. ``weights`` (model.weights)
    reaches builders of pretrainable models; loading a weights file is the caller's job.
    ``multi_label``: an independent sigmoid probability per label instead of the softmax."""
    model = entry(name)
    extra = {"weights": None if weights == "none" else weights} if model.pretrained else {}
    network = model.build(input_shape, num_classes, **check_args(name, args or {}), **extra, keras=keras)
    if multi_label:
        use_sigmoid_head(network, default_keras(keras))
    return network


def default_keras(keras=None):
    """The Keras module a builder builds with: the one passed in, else Keras 3."""
    return keras if keras is not None else importlib.import_module("keras")


# Explicit imports: each module registers its builders on import.
from visionpipe.models import airbench, applications, resnet, small_cnn, vit  # noqa: E402,F401
