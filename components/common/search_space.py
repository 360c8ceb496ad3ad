"""The tune stage's search space over config keys, and setting a config key by its path.

A key is a dotted path into the config tree, with list items by index and model arguments
by name: ``train.learning_rate``, ``model.args.width``, ``train.augment.policy.1.magnitude``.
Only the sections the train stage reads can vary between trials (``TUNABLE``). A range is
one of ``{log: [lo, hi]}``, ``{range: [lo, hi], step: s}``, ``{int: [lo, hi], step: s}`` or
``{choice: [...]}``; ``check_space`` checks every key against the tree and every value
against the field's type (model arguments against the model's builder) when the config loads.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any

from visionpipe.pipeline.config import ConfigError, coerce

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config

TUNABLE = ("model", "train", "input", "preprocessing")  # what a trial may change
KINDS = ("log", "range", "int", "choice")


def set_path(tree: Any, path: str, value: Any) -> Any:
    """A copy of ``tree`` (a dataclass) with the value at ``path`` replaced, type-checked."""
    head, _, rest = path.partition(".")
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):  # a config node, not a class
        hints = typing.get_type_hints(type(tree))
        if head not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(tree))
            raise ConfigError(f"no config key {head!r} in {type(tree).__name__}; valid keys: {valid}")
        if not rest:
            return dataclasses.replace(tree, **{head: coerce(hints[head], value, path)})
        return dataclasses.replace(tree, **{head: set_path(getattr(tree, head), rest, value)})
    if isinstance(tree, tuple):
        if not head.isdigit() or int(head) >= len(tree):
            raise ConfigError(f"list index {head!r} is out of range (the list has {len(tree)} items)")
        index = int(head)
        item = set_path(tree[index], rest, value) if rest else value
        return (*tree[:index], item, *tree[index + 1 :])
    if isinstance(tree, dict):
        return {**tree, head: set_path(tree[head], rest, value) if rest else value}
    raise ConfigError(f"cannot go into {head!r}: {type(tree).__name__} has no keys")


def apply_values(tree: Any, values: dict[str, Any]) -> Any:
    """``tree`` with every (path -> value) applied, model arguments checked against the model."""
    for path, value in values.items():
        tree = set_path(tree, path, value)
    model = getattr(tree, "model", None)
    if model is not None:
        from visionpipe.models.registry import check_args

        tree = dataclasses.replace(tree, model=dataclasses.replace(model, args=check_args(model.name, model.args)))
    return tree


def candidates(spec: dict[str, Any], key: str) -> list[Any]:
    """The values a range can take at its ends (or all of its choices), for checking."""
    if len(spec) not in (1, 2) or not (set(spec) - {"step"}) <= set(KINDS) or len(set(spec) & set(KINDS)) != 1:
        raise ConfigError(
            f"tune.space.{key} must be one of {{log: [lo, hi]}}, {{range: [lo, hi], step: s}}, "
            f"{{int: [lo, hi], step: s}} or {{choice: [a, b, ...]}}; got {spec!r}"
        )
    kind = next(k for k in KINDS if k in spec)
    values = spec[kind]
    if not isinstance(values, list) or not values or (kind != "choice" and len(values) != 2):
        raise ConfigError(f"tune.space.{key}.{kind} must be a list ({'values' if kind == 'choice' else '[lo, hi]'})")
    if kind != "choice" and not values[0] < values[1]:
        raise ConfigError(f"tune.space.{key}.{kind}: the low end must be below the high end; got {values}")
    if kind == "log" and values[0] <= 0:
        raise ConfigError(f"tune.space.{key}.log needs positive ends; got {values}")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"tune.space.{key}.int needs whole numbers; got {values}")
    return values


def check_space(config: Config) -> None:
    for key, spec in config.tune.space.items():
        if key.split(".")[0] not in TUNABLE:
            raise ConfigError(f"tune.space key {key!r}: only keys under {', '.join(TUNABLE)} can change between trials")
        if not isinstance(spec, dict):
            raise ConfigError(f"tune.space.{key} must be a mapping such as {{log: [0.0001, 0.01]}}; got {spec!r}")
        for value in candidates(spec, key):
            apply_values(config, {key: value})
