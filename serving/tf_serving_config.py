"""TF Serving's own config files, built and checked with its protos: ``models.config`` (a text
``ModelServerConfig``) and ``batching.config`` (a text ``BatchingParameters``).

The rules here are TF Serving's (model_servers/server_core.cc, batching_session.cc): version
labels match ``[A-Za-z0-9_]+``; a label may only name a version the server has loaded, unless
``--allow_version_labels_for_unavailable_models`` is set, and even then an existing label is
never moved onto a version that is not loaded yet; ``allowed_batch_sizes`` increase and end
at ``max_batch_size``. Nothing here imports TensorFlow, so the config sections check the rules (serving/config.py).

The tensorflow-serving-api wheel ships ``model_server_config_pb2`` but not
``session_bundle_config_pb2``; ``BatchingParameters`` then comes from a transcription of its
message (same package, field names, numbers and wrapper types as
tensorflow_serving/servables/tensorflow/session_bundle_config.proto) in a private descriptor
pool, so the text it writes is what the server parses.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warmup records (saved_model_warmup_util)
STABLE, CANARY = "stable", "canary"
LABEL_PATTERN = re.compile(r"[A-Za-z0-9_]+")  # server_core.cc's ValidateModelVersionLabel


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of ``models.config``: which versions are served and what the labels name."""

    name: str
    base_path: str  # as the server sees it
    versions: tuple[int, ...] | None = None  # None = the latest version only
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def served(self, on_disk: Sequence[int]) -> set[int]:
        """The versions the server loads from ``on_disk``."""
        if self.versions is None:
            return {max(on_disk)} if on_disk else set()
        return set(self.versions) & set(on_disk)


def versions_on_disk(base: Path) -> list[int]:
    """The versions under a model base path that TF Serving could load (numbered folders with a
    SavedModel), ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file())


def model_server_config(entries: Sequence[ModelEntry]) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    for entry in entries:
        model = config.model_config_list.config.add(name=entry.name, base_path=entry.base_path)
        model.model_platform = "tensorflow"
        if entry.versions is None:
            model.model_version_policy.latest.num_versions = 1
        else:
            model.model_version_policy.specific.versions.extend(sorted(entry.versions))
        for label, version in sorted(entry.labels.items()):
            model.version_labels[label] = version
    return config


def entries_of(config: model_server_config_pb2.ModelServerConfig) -> list[ModelEntry]:
    entries = []
    for model in config.model_config_list.config:
        policy = model.model_version_policy
        specific = policy.WhichOneof("policy_choice") == "specific"
        versions = tuple(policy.specific.versions) if specific else None
        entries.append(ModelEntry(model.name, model.base_path, versions, dict(model.version_labels)))
    return entries


def replace_entry(config: model_server_config_pb2.ModelServerConfig | None, entry: ModelEntry):
    """``config`` with ``entry`` in place of the model of the same name (other models kept)."""
    others = [e for e in entries_of(config) if e.name != entry.name] if config is not None else []
    return model_server_config([*others, entry])


def entry_named(config: model_server_config_pb2.ModelServerConfig | None, name: str) -> ModelEntry | None:
    return next((e for e in entries_of(config) if e.name == name), None) if config is not None else None


# (field, type) of tensorflow.serving.BatchingParameters, numbered in its proto's order
# (session_bundle_config.proto); text files parse as the server parses them.
_BATCHING_FIELDS = (
    ("max_batch_size", "Int64Value"),
    ("batch_timeout_micros", "Int64Value"),
    ("max_enqueued_batches", "Int64Value"),
    ("num_batch_threads", "Int64Value"),
    ("thread_pool_name", "StringValue"),
    ("allowed_batch_sizes", "repeated int64"),
    ("pad_variable_length_inputs", "bool"),
    ("enable_large_batch_splitting", "bool"),
    ("max_execution_batch_size", "Int64Value"),
)


@functools.cache
def batching_parameters_class() -> type[Message]:
    """TF Serving's BatchingParameters message. The pip package tensorflow-serving-api does not
    ship ``session_bundle_config_pb2``; without it the message is built from its field list in
    a private descriptor pool (same package, names, numbers and wrapper types)."""
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    message = file.message_type.add(name="BatchingParameters")
    scalar = {
        "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    }
    for number, (name, kind) in enumerate(_BATCHING_FIELDS, start=1):
        field = message.field.add(name=name, number=number)
        field.label = field.LABEL_REPEATED if kind.startswith("repeated ") else field.LABEL_OPTIONAL
        kind = kind.removeprefix("repeated ")
        if kind in scalar:
            field.type = scalar[kind]
        else:
            field.type, field.type_name = field.TYPE_MESSAGE, f".google.protobuf.{kind}"
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def batching_parameters(
    max_batch_size: int,
    batch_timeout_micros: int,
    num_batch_threads: int,
    max_enqueued_batches: int,
    allowed_batch_sizes: Sequence[int],
) -> Message:
    params = batching_parameters_class()()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.num_batch_threads.value = num_batch_threads
    params.max_enqueued_batches.value = max_enqueued_batches
    params.allowed_batch_sizes.extend(allowed_batch_sizes)
    return params


def batching_problems(
    max_batch_size: int,
    allowed_batch_sizes: Sequence[int],
    batch_timeout_micros: int = 0,
    num_batch_threads: int = 1,
    max_enqueued_batches: int = 1,
) -> list[str]:
    """What TF Serving would refuse in these batching parameters (empty when none)."""
    problems = []
    if max_batch_size < 1:
        problems.append(f"max_batch_size must be at least 1; got {max_batch_size}")
    if num_batch_threads < 1:
        problems.append(f"num_batch_threads must be at least 1; got {num_batch_threads}")
    if max_enqueued_batches < 1:
        problems.append(f"max_enqueued_batches must be at least 1; got {max_enqueued_batches}")
    if batch_timeout_micros < 0:
        problems.append(f"batch_timeout_micros must not be negative; got {batch_timeout_micros}")
    sizes = list(allowed_batch_sizes)
    if sizes:
        if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] < 1:
            problems.append(f"allowed_batch_sizes must be positive and strictly increasing; got {sizes}")
        if sizes[-1] != max_batch_size:
            problems.append(
                f"allowed_batch_sizes must end at max_batch_size ({max_batch_size}); got {sizes} "
                "(TF Serving refuses to start otherwise)"
            )
    return problems


# What TF Serving uses for a field batching.config leaves out (BasicBatchScheduler::Options;
# num_batch_threads defaults to the core count there, 1 here only passes the >= 1 check).
BATCHING_DEFAULTS = {"max_batch_size": 1000, "batch_timeout_micros": 0, "num_batch_threads": 1,
                     "max_enqueued_batches": 10}  # fmt: skip


def check_batching(params: Message) -> list[str]:
    """TF Serving's rules on a parsed BatchingParameters; absent fields take its defaults."""
    value = {name: getattr(params, name).value if params.HasField(name) else default
             for name, default in BATCHING_DEFAULTS.items()}  # fmt: skip
    return batching_problems(
        value["max_batch_size"],
        list(params.allowed_batch_sizes),
        value["batch_timeout_micros"],
        value["num_batch_threads"],
        value["max_enqueued_batches"],
    )


def check_models_config(
    config: model_server_config_pb2.ModelServerConfig,
    on_disk: Mapping[str, Sequence[int]],
    available: Mapping[str, set[int]],
    allow_unavailable: bool,
) -> list[str]:
    """What TF Serving would refuse in ``config``, or would serve wrongly, as messages.

    ``on_disk``: each model's version folders after the change (a model left out, e.g. one
    added by hand elsewhere, gets the rules that need no disk: platform, label syntax);
    ``available``: the versions the server has loaded before it (what the previous config
    served), by model name; ``allow_unavailable``: the server runs with
    --allow_version_labels_for_unavailable_models.
    """
    problems = []
    names = [m.name for m in config.model_config_list.config]
    if len(set(names)) != len(names):
        problems.append(f"model names repeat in model_config_list: {names}")
    for model, entry in zip(config.model_config_list.config, entries_of(config), strict=True):
        where = f"model {model.name!r}"
        if not model.name or not model.base_path:
            problems.append(f"{where}: name and base_path are required")
        if model.model_platform != "tensorflow":
            problems.append(f"{where}: model_platform must be 'tensorflow'; got {model.model_platform!r}")
        bad_labels = [label for label in model.version_labels if not LABEL_PATTERN.fullmatch(label)]
        problems += [f"{where}: version label {label!r} must match [A-Za-z0-9_]+" for label in bad_labels]
        if model.name not in on_disk:
            continue
        versions = sorted(on_disk[model.name])
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific":
            missing = sorted(set(policy.specific.versions) - set(versions))
            if missing:
                problems.append(f"{where}: the version policy names versions {missing}, which are not on disk")
        elif not versions:
            problems.append(f"{where}: no version folder to serve")
        served = entry.served(versions)
        loaded = available.get(model.name, set())
        for label, version in model.version_labels.items():
            if version not in served:
                problems.append(
                    f"{where}: label {label!r} points at version {version}, which is not served "
                    f"(served: {sorted(served) or 'none'})"
                )
            elif version not in loaded and not allow_unavailable:
                problems.append(
                    f"{where}: label {label!r} points at version {version}, which the server has not loaded "
                    "yet; TF Serving refuses that without --allow_version_labels_for_unavailable_models"
                )
    return problems


def check_label_moves(
    before: ModelEntry | None, after: ModelEntry, available: set[int], allow_unavailable: bool
) -> list[str]:
    """A label that already names a version may only move onto a loaded version, flag or not."""
    if before is None:
        return []
    problems = []
    for label, version in after.labels.items():
        old = before.labels.get(label)
        if old is not None and old != version and version not in available:
            problems.append(
                f"model {after.name!r}: label {label!r} would move from version {old} to version {version}, "
                "which the server has not loaded yet; TF Serving refuses to move a label onto an unloaded "
                f"version{' even with --allow_version_labels_for_unavailable_models' if allow_unavailable else ''}"
            )
    return problems


def write_text_proto(path: Path, message: Message) -> None:
    """Writes ``message`` in text format beside ``path`` and renames it into place, so a server
    polling the file never reads half of it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text_format.MessageToString(message))
    os.replace(tmp, path)


def parse_models_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    """Parses a text ModelServerConfig; text_format.ParseError says where it is malformed."""
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def read_models_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    return parse_models_config(path.read_text())


def read_batching(path: Path) -> Message:
    return text_format.Parse(path.read_text(), batching_parameters_class()())
