"""The framework's part of a run's config: the sections the runner itself reads (``run``,
``beam``, ``seed``), what it needs of the whole tree (``RunTree``), and reading a tree from YAML
and ``--set a.b=value`` overrides.

Each stage owns its section (``components/<stage>/config.py``, ``models/config.py``,
``serving/config.py``, ``data/drift.py``); the application composes them into the one typed tree
(``visionpipe/config.py``). Every section is a frozen dataclass: an unknown key or a value of the
wrong type fails with a ``ConfigError`` that names the key, the expected type and the valid
keys, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

# ConfigError, coerce and to_dict are part of this module's interface too.
from visionpipe.pipeline.typed_tree import ConfigError, apply_override, build, coerce, to_dict  # noqa: F401


@dataclasses.dataclass(frozen=True)
class RunConfig:
    root: str = "visionpipe_runs"  # artifacts, metadata.sqlite and logs of every run live here


# The Beam runners visionpipe names, each with what Beam's --runner takes for it (README "Beam
# runners" has the flags each needs). Any other runner goes by its fully qualified class name.
RUNNERS = {
    "DirectRunner": "DirectRunner",  # this machine; ingest runs it on Beam's FnApiRunner
    "PortableRunner": "PortableRunner",  # a job service: --job_endpoint=host:port (Flink, Spark, local)
    "DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner",  # --dask_client_address=tcp://host:port
    "DataflowRunner": "DataflowRunner",
    "FlinkRunner": "FlinkRunner",
    "SparkRunner": "SparkRunner",
}


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    runner: str = "DirectRunner"  # a RUNNERS name or a runner's fully qualified class name
    direct_num_workers: int = 2
    # auto: worker processes (direct_num_workers) when the work repays their start-up, else in this process
    direct_running_mode: Literal["auto", "in_memory", "multi_threading", "multi_processing"] = "auto"
    extra_options: tuple[str, ...] = ()  # passed through verbatim, e.g. "--flink_master=host:8081"
    num_shards: int = 0  # 0 lets the runner choose
    # Files one worker call reads and checks at least: amortises Beam's per-element cost. A
    # listing of more files is cut into at most ingest's MAX_TASKS tasks, each larger.
    files_per_task: int = 250

    def __post_init__(self):
        if self.runner not in RUNNERS and "." not in self.runner:
            raise ConfigError(
                f"beam.runner {self.runner!r} is not one of {', '.join(RUNNERS)}; another runner goes by its "
                "fully qualified class name (e.g. apache_beam.runners.dask.dask_runner.DaskRunner)"
            )

    @property
    def runner_flag(self) -> str:
        """What Beam's --runner takes for this runner."""
        return RUNNERS.get(self.runner, self.runner)


class RunTree(Protocol):
    """What the framework reads from a run's config tree (the application's ``Config``)."""

    @property
    def run(self) -> RunConfig: ...

    @property
    def seed(self) -> int: ...

    @property
    def beam(self) -> BeamConfig: ...


def given_tree(
    path: str | Path | None,
    overrides: typing.Sequence[str],
    under: dict[str, Any] | None = None,
    over: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain tree that the YAML file and the overrides make, merged over ``under`` (defaults
    the application derives, e.g. from ``--data``) and under ``over`` (values that win over the
    YAML's), with ``explicit``: the keys the YAML and the overrides set."""
    from_file = _read_yaml(Path(path)) if path is not None else {}
    if "explicit" in from_file:  # a run's saved config.yaml: it says which keys its user set
        explicit = set(coerce(tuple[str, ...], from_file.pop("explicit"), "explicit"))
    else:
        explicit = set(_leaves(from_file, ""))
    merged = _merged(_merged(under or {}, from_file), over or {})
    for override in overrides:
        apply_override(merged, override)
        alone: dict[str, Any] = {}
        apply_override(alone, override)
        explicit.update(_leaves(alone, ""))
    return {**merged, "explicit": sorted(explicit)}


def is_explicit(explicit: typing.Iterable[str], key: str) -> bool:
    """Whether the user set ``key`` (a dotted path), a section holding it, or a key inside it."""
    return any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in explicit)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded or {}


def _leaves(tree: dict[str, Any], prefix: str) -> list[str]:
    """The dotted keys a YAML mapping sets; an empty mapping is a value itself (``args: {}``)."""
    keys = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        keys += _leaves(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, section by section (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def dump_yaml(config: Any) -> str:
    """A config tree (any section, or the whole) as YAML, as a run saves it."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
