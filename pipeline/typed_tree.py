"""Typed trees of frozen dataclasses from plain data (YAML), checked key by key.

``build`` makes a dataclass from a mapping, refusing unknown keys (naming the valid ones) and
values of the wrong type (naming the key and the type); ``coerce`` checks one value against a
type the way YAML gives it (lists become tuples where the type says so). ``to_dict`` goes back.
The config tree (``pipeline.config``) is built with these.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration file or override does not match the config tree."""


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} must look like section.key=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def build(cls: type, data: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping, checking every key and value type."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown config key {_join(where, unknown[0])!r}; valid keys under "
            f"{where or 'the top level'}: {', '.join(names)}"
        )
    required = _required(cls)
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])} is required")
    values = {name: _coerce(hints[name], data[name], _join(where, name)) for name in names if name in data}
    return cls(**values)


def _required(cls: type) -> list[str]:
    missing = dataclasses.MISSING
    return [f.name for f in dataclasses.fields(cls) if f.default is missing and f.default_factory is missing]


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` checked against type ``tp`` (as YAML gives it: lists become tuples where the
    type says so); ConfigError naming ``key`` if it does not fit."""
    return _coerce(tp, value, key)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key} must be a mapping of names to values; got {value!r}")
        value_type = typing.get_args(tp)[1]
        return {k: _coerce(value_type, v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a dataclass type, not an instance
        required = _required(tp)
        if isinstance(value, str) and len(required) == 1:
            value = {required[0]: value}  # shorthand: "translate" for {op: translate}
        return build(tp, value, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(next(c for c in choices if c == value)):
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}; got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list; got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} items; got {value!r}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {tp}; got {value!r}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is type(None) and value is None:
        return None
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{key} must be of type {getattr(tp, '__name__', tp)}; got {value!r}")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data view of a config (tuples become lists) for YAML/JSON output and fingerprints."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def check_range(key: str, value: float, low: float, high: float | None = None) -> None:
    """A setting whose out-of-range value would make a check meaningless: a ConfigError naming
    ``key`` and its bounds (a gate's default checks can be tuned, never switched off by a value
    that lets anything through)."""
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{key} must be {bounds}; got {value}")
