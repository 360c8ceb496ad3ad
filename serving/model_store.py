"""Which models and versions the development server serves, kept current by polling.

Mirrors tensorflow_model_server's model management: one model from ``--model_base_path`` and
``--model_name``, or several from a ``--model_config_file`` (a text ``ModelServerConfig``,
parsed with TF Serving's own proto) with its version policies and version labels. Every
``poll()`` lists each base path: a new version is loaded fully before it is swapped in under a
lock (after its ``assets.extra`` warmup requests ran, as in TF Serving), and only then are
versions the policy no longer wants dropped. A request holds the
``Servable`` it resolved, so in-flight requests finish on the version they started on.
Directories whose name is not a number (push's hidden ``.staging-*`` folders) are never loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from google.protobuf import text_format

from visionpipe.serving.servable import Code, Servable, ServingError
from visionpipe.serving.tf_serving_config import parse_models_config, versions_on_disk

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One served model: its base path and which of its versions to serve."""

    name: str
    base_path: Path
    policy: str = "latest"  # latest | all | specific (TF Serving's ServableVersionPolicy)
    num_versions: int = 1  # for latest
    versions: tuple[int, ...] = ()  # for specific
    labels: tuple[tuple[str, int], ...] = ()  # version_labels: (label, version)

    def wanted(self, on_disk: list[int]) -> list[int]:
        """The versions on disk this policy serves."""
        if self.policy == "all":
            return sorted(on_disk)
        if self.policy == "specific":
            return sorted(v for v in on_disk if v in self.versions)
        return sorted(on_disk)[-self.num_versions :]


def specs_from_config_text(text: str, relative_to: Path) -> list[ModelSpec]:
    """ModelSpecs from a text ``ModelServerConfig``; relative base paths are taken relative to
    the config file's directory. A base path that does not exist here (e.g. ``/models/NAME``
    inside the official container) falls back to ``<config dir>/<name>``, where push writes it."""
    try:
        config = parse_models_config(text)
    except text_format.ParseError as err:
        raise ValueError(f"not a ModelServerConfig: {err}") from None
    specs = []
    for model in config.model_config_list.config:
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {model.name}: platform {model.model_platform!r} is not served here")
        base = Path(model.base_path)
        base = base if base.is_absolute() else relative_to / base
        if not base.is_dir() and (relative_to / model.name).is_dir():
            log.info("model %s: base path %s does not exist here; using %s", model.name, base, relative_to / model.name)
            base = relative_to / model.name
        choice = model.model_version_policy.WhichOneof("policy_choice")
        policy = model.model_version_policy
        specs.append(
            ModelSpec(
                name=model.name,
                base_path=base,
                policy=choice or "latest",
                num_versions=(policy.latest.num_versions or 1) if choice in (None, "latest") else 1,
                versions=tuple(policy.specific.versions) if choice == "specific" else (),
                labels=tuple(sorted(model.version_labels.items())),
            )
        )
    if not specs:
        raise ValueError("the ModelServerConfig lists no models (model_config_list)")
    return specs


class ConfigFile:
    """A models.config file, re-read only when it changed (``--model_config_file_poll_wait_seconds``:
    `visionpipe promote` moves labels by rewriting it)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int] | None = None

    def specs_if_changed(self) -> list[ModelSpec] | None:
        """The file's ModelSpecs, or None if it is unchanged since the last call; raises
        ValueError (a bad config) or OSError (unreadable)."""
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        specs = specs_from_config_text(self.path.read_text(), self.path.parent)
        self._stamp = stamp
        return specs


class ModelStore:
    """The loaded versions of every model, swapped atomically as versions come and go."""

    def __init__(self, specs: list[ModelSpec]):
        self._specs = {s.name: s for s in specs}
        self._loaded: dict[str, dict[int, Servable]] = {s.name: {} for s in specs}
        self._states: dict[str, dict[int, str]] = {s.name: {} for s in specs}  # TF Serving's state names
        self._errors: dict[tuple[str, int], str] = {}
        # A version that failed to load is retried only once its folder changed (a copy that
        # was still being written), not on every poll.
        self._failed_stamp: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one poll at a time (the thread and a direct call)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # loading ------------------------------------------------------------------------------
    def poll(self) -> list[str]:
        """Loads new wanted versions, then unloads unwanted ones; returns what changed."""
        changes = []
        with self._poll_lock:
            for spec in self._specs.values():
                wanted = spec.wanted(versions_on_disk(spec.base_path))
                for version in wanted:
                    path = spec.base_path / str(version)
                    if version in self._loaded[spec.name] or self._failed_unchanged(spec.name, version, path):
                        continue
                    self._set_state(spec.name, version, "LOADING")
                    try:
                        servable = Servable(spec.name, version, path)
                        warmed = servable.warm_up()
                    except Exception as err:  # a broken version must not take the server down
                        self._errors[spec.name, version] = f"{type(err).__name__}: {err}"
                        self._failed_stamp[spec.name, version] = _stamp(path)
                        self._set_state(spec.name, version, "END")
                        changes.append(f"{spec.name} version {version} failed to load: {err}")
                        continue
                    self._errors.pop((spec.name, version), None)
                    with self._lock:
                        self._loaded[spec.name] = {**self._loaded[spec.name], version: servable}
                        self._states[spec.name][version] = "AVAILABLE"
                    changes.append(f"{spec.name} version {version} loaded ({warmed} warmup requests replayed)")
                stale = [v for v in self._loaded[spec.name] if v not in wanted]
                if stale and any(v in self._loaded[spec.name] for v in wanted):  # never drop the last one
                    with self._lock:
                        self._loaded[spec.name] = {v: s for v, s in self._loaded[spec.name].items() if v in wanted}
                        for version in stale:
                            self._states[spec.name][version] = "END"
                    changes += [f"{spec.name} version {v} unloaded" for v in stale]
        for change in changes:
            log.info(change)
        return changes

    def _failed_unchanged(self, name: str, version: int, path: Path) -> bool:
        stamp = self._failed_stamp.get((name, version))
        return stamp is not None and stamp == _stamp(path)

    def reconfigure(self, specs: list[ModelSpec]) -> list[str]:
        """Serves ``specs`` from now on (a re-read models.config: models added or removed, new
        policies and labels), then polls so new versions load and dropped ones go."""
        with self._poll_lock, self._lock:
            changes = [f"model {n} removed" for n in self._specs if n not in {s.name for s in specs}]
            changes += [f"model {s.name} added" for s in specs if s.name not in self._specs]
            self._specs = {s.name: s for s in specs}
            self._loaded = {s.name: self._loaded.get(s.name, {}) for s in specs}
            self._states = {s.name: self._states.get(s.name, {}) for s in specs}
        return changes + self.poll()

    def start_polling(self, interval: float) -> None:
        """Polls every ``interval`` seconds in a daemon thread (0: never, like TF Serving's flag)."""
        if interval <= 0:
            return

        def loop():
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception:  # a vanished directory mid-listing: try again next time
                    log.exception("polling the model base paths failed")

        self._thread = threading.Thread(target=loop, name="model-store-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _set_state(self, name: str, version: int, state: str) -> None:
        with self._lock:
            self._states[name][version] = state

    # lookups ------------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return list(self._specs)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: a version, a label, or the newest loaded version."""
        loaded = self._models(name)
        if label:
            version = self._label_version(name, label)
        if version is None:
            if not loaded:
                raise ServingError(Code.UNAVAILABLE, f"Servable not found for request: Latest({name}) (still loading?)")
            return loaded[max(loaded)]
        if version not in loaded:
            raise ServingError(
                Code.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})"
                f"{f' (label {label})' if label else ''}; loaded versions: {sorted(loaded) or 'none'}",
            )
        return loaded[version]

    def states(self, name: str, version: int | None = None, label: str | None = None) -> list[tuple[int, str, str]]:
        """(version, state, error message) as GetModelStatus reports them."""
        self._models(name)
        if label:
            version = self._label_version(name, label)
        with self._lock:
            states = dict(self._states[name])
        if version is not None:
            if version not in states:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        if not states:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return [(v, s, self._errors.get((name, v), "")) for v, s in sorted(states.items(), reverse=True)]

    def _models(self, name: str) -> dict[int, Servable]:
        if name not in self._specs:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: model {name!r} (served: {', '.join(self._specs)})"
            )
        with self._lock:
            return self._loaded[name]

    def _label_version(self, name: str, label: str) -> int:
        labels = dict(self._specs[name].labels)
        if label not in labels:
            raise ServingError(
                Code.INVALID_ARGUMENT,  # as TF Serving's ServerCore::GetModelVersionForLabel
                f"Unrecognized servable version label: {label} (model {name} has: {', '.join(labels) or 'none'})",
            )
        return labels[label]


def _stamp(path: Path) -> int:
    """Newest modification time of a version folder's files (0 if it vanished)."""
    try:
        return max((p.stat().st_mtime_ns for p in [path, *path.rglob("*")]), default=0)
    except OSError:
        return 0
