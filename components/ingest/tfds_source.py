"""Locate a TensorFlow Datasets (TFDS) dataset that was already prepared on disk.

visionpipe machines have no internet, so this never downloads or builds: it
reads the metadata (``dataset_info.json`` / ``features.json``) that ``tfds build``
wrote under ``data_dir`` and returns the TFRecord files per visionpipe split plus
the feature keys needed to parse their ``tf.train.Example`` records. It works
for datasets whose builder code is not importable here (custom datasets).
"""

from __future__ import annotations

import dataclasses
import os
import re

from visionpipe.pipeline.errors import DataError

# TFDS split name -> visionpipe split; any other split ("extra", ...) is ignored.
_SPLIT_MAP = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}
# "name/x.y.z" or "name/config/x.y.z" (the on-disk folder layout) -> TFDS's "...:x.y.z".
_TRAILING_VERSION = re.compile(r"^(?P<head>[^:]+)/(?P<version>(\d+|\*)(\.(\d+|\*)){2})$")


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    name: str  # dataset name as given
    files: dict[str, list[str]]  # visionpipe split -> TFRecord paths of that TFDS split
    image_key: str  # tf.train.Example key of the encoded image
    label_key: str  # tf.train.Example key of the int64 ClassLabel (multi-label: of the Sequence of them)
    class_names: list[str]  # index -> class name
    multi_label: bool = False  # the label feature is a Sequence of ClassLabel: a set of labels per image
    label_reason: str = ""  # which feature was taken as the label and why, for the ingest summary


def locate_tfds(name: str, data_dir: str, task: str = "auto") -> TfdsSource:
    """Find the prepared TFDS dataset ``name`` under ``data_dir`` (offline only). ``task``
    (``data.labels.task``): auto takes a ClassLabel feature (one class per image), else a
    Sequence of ClassLabel (a set of labels per image, as VOC's ``labels``)."""
    if not data_dir:
        raise DataError(
            f"data.source is 'tfds' ({name!r}) but data.tfds_data_dir is empty; set it to the folder "
            "holding the prepared dataset (the --data_dir given to `tfds build`)"
        )
    data_dir = os.path.expanduser(str(data_dir))
    tfds_name = _TRAILING_VERSION.sub(r"\g<head>:\g<version>", name.strip())

    import tensorflow_datasets as tfds  # slow import: only pay for it when TFDS is used
    from google.protobuf import json_format
    from tensorflow_datasets.core import naming, read_only_builder

    try:
        folder = os.path.join(data_dir, naming.parse_builder_name_kwargs(tfds_name)[0].name)
    except ValueError:
        raise DataError(
            f"data.tfds_name {name!r} is not a TFDS name; use name, name/config, name/version "
            "or name/config/version (e.g. mnist, mnist/3.0.1)"
        ) from None
    try:
        # Files only, never the builder code: this is what tfds.builder itself falls back to
        # for unregistered names, it picks whatever version is on disk (even if this TFDS
        # release has a different one) and it cannot reach GCS or the network.
        builder = read_only_builder.builder_from_files(tfds_name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise DataError(
            f"TFDS dataset {name!r} is not prepared under data_dir {data_dir} and this machine cannot download "
            f"it. On a machine with internet run:\n  tfds build {tfds_name} --data_dir {data_dir}\n"
            f"(for a custom dataset: run `tfds build --data_dir {data_dir}` in its source folder), then copy "
            f"the resulting folder {folder}/ to this machine at the same path."
        ) from None
    except (ValueError, OSError, json_format.Error) as e:  # found, but dataset_info/features.json unusable
        raise DataError(f"cannot read TFDS dataset {name!r} under {data_dir}: {e}") from None
    info = builder.info
    _read_as_tfrecord(name, tfds_name, data_dir, builder)
    files = _split_files(name, builder.data_dir, info.splits)
    image_key, (label_key, multi_label, reason) = _feature_keys(name, info, task)
    label = info.features[label_key]
    return TfdsSource(
        name=name,
        files=files,
        image_key=image_key,
        label_key=label_key,
        class_names=list((label.feature if multi_label else label).names),
        multi_label=multi_label,
        label_reason=reason,
    )


def _read_as_tfrecord(name: str, tfds_name: str, data_dir: str, builder) -> None:
    """Points the builder's split files at its TFRecord copies; a dataset without them is an error."""
    import tensorflow_datasets as tfds

    info = builder.info
    if info.file_format == tfds.core.FileFormat.TFRECORD:
        return
    if tfds.core.FileFormat.TFRECORD not in info.alternative_file_formats:
        raise DataError(
            f"TFDS dataset {name!r} at {builder.data_dir} is stored as "
            f"{info.file_format.value}; visionpipe reads only tfrecord. Rebuild it with "
            f"`tfds build {tfds_name} --file_format tfrecord --data_dir {data_dir}`."
        )
    # tfds.builder_from_directory(file_format="tfrecord") refuses this in 4.9.x ("already set"),
    # so repoint the split file templates at the tfrecord copies the way TFDS does internally.
    info.set_file_format(tfds.core.FileFormat.TFRECORD, override=True, override_if_initialized=True)


def _split_files(name: str, builder_dir: str, splits) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for tfds_split, split_info in splits.items():
        target = _SPLIT_MAP.get(tfds_split.lower())
        if target is None or target in files:  # unknown split, or a second alias of "val"
            continue
        # TFDS derives shard names from dataset_info.json; check them, since a partial copy is common.
        paths = list(split_info.filepaths)
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise DataError(
                f"TFDS dataset {name!r} at {builder_dir} is incomplete: split {tfds_split!r} "
                f"is missing {len(missing)} of {len(paths)} files, e.g. {missing[0]}. Copy it again."
            )
        if paths:
            files[target] = [os.fspath(p) for p in paths]
    if "train" not in files:
        raise DataError(
            f"TFDS dataset {name!r} at {builder_dir} has no (non-empty) train split; its splits are "
            f"{sorted(splits)}. visionpipe needs 'train' (optional: 'validation'/'valid'/'val', 'test')."
        )
    return files


def _feature_keys(name: str, info, task: str) -> tuple[str, tuple[str, bool, str]]:
    """The image feature's key, and (the label feature's key, multi-label, why that one)."""
    import tensorflow_datasets as tfds

    features = dict(info.features.items()) if isinstance(info.features, tfds.features.FeaturesDict) else {}
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    classes = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    label_sets = [
        k
        for k, f in features.items()
        if isinstance(f, tfds.features.Sequence) and isinstance(f.feature, tfds.features.ClassLabel)
    ]
    # Prefer the dataset author's (input, target) pair when it fits, e.g. cifar100's "label"
    # over "coarse_label"; otherwise the first feature of each kind.
    for key, found in zip(info.supervised_keys or (), (images, classes), strict=False):
        if isinstance(key, str) and key in found:
            found.insert(0, key)
    kinds = {k: type(f).__name__ for k, f in features.items()}
    if not images:
        raise DataError(f"TFDS dataset {name!r} needs an Image feature; it has {kinds or info.features!r}.")
    multi = task == "multi_label" or (task == "auto" and not classes)
    if multi and label_sets:
        why = "data.labels.task is multi_label" if task == "multi_label" else "it has no ClassLabel feature"
        return images[0], (label_sets[0], True, f"TFDS feature {label_sets[0]!r} is a Sequence of ClassLabel ({why})")
    if not multi and classes:
        return images[0], (classes[0], False, f"TFDS feature {classes[0]!r} is a ClassLabel: one class per image")
    wanted = {
        "auto": "a ClassLabel feature (or a Sequence of ClassLabel, for a set of labels per image)",
        "multi_label": "a Sequence of ClassLabel feature (a set of labels per image)",
    }.get(task, "a ClassLabel feature")
    raise DataError(
        f"TFDS dataset {name!r} needs an Image feature and {wanted} for data.labels.task {task}; it has {kinds}."
        + (" Set data.labels.task to multi_label to read its label sets." if label_sets and not multi else "")
    )
