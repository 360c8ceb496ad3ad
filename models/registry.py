"""Model registry: builders register under a name; ``create_model`` builds one by name.

Every builder takes ``(input_shape, num_classes, config)`` and returns an uncompiled Keras
model that maps normalized images to class probabilities. All model modules are imported
explicitly at the bottom of this file so the registry is complete wherever it is used.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from visionpipe.pipeline.config import ModelConfig

Builder = Callable[[tuple[int, int, int], int, ModelConfig], keras.Model]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorate


def model_names() -> list[str]:
    return sorted(_BUILDERS)


def create_model(
    name: str, input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig | None = None
) -> keras.Model:
    from visionpipe.pipeline.errors import UserError

    if name not in _BUILDERS:
        raise UserError(f"unknown model {name!r} (model.name); registered models: {', '.join(model_names())}")
    return _BUILDERS[name](input_shape, num_classes, config or ModelConfig(name=name))


# Explicit imports: each module registers its builders on import.
from visionpipe.models import mobilenet, resnet, small_cnn  # noqa: E402,F401
