"""locate_tfds against a tiny TFDS dataset prepared offline inside the test (no downloads)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.tfds_fixture import COUNTS, DS_NAME, _example
from visionpipe.components.ingest.tfds_source import TfdsSource, locate_tfds
from visionpipe.pipeline.errors import DataError

SPLITS = {"train": "train", "validation": "val", "test": "test"}


@pytest.fixture
def data_dir(tfds_data_dir: Path) -> Path:
    return tfds_data_dir


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _read_records(paths: list[str]) -> list[tuple[tuple[int, int, int], int]]:
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(paths):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        image = tf.io.decode_image(feature["image"].bytes_list.value[0]).numpy()
        out.append((image.shape, int(feature["label"].int64_list.value[0])))
    return out


@pytest.mark.parametrize("name", [DS_NAME, f"{DS_NAME}/1.0.0", f"{DS_NAME}:1.*.*"])
def test_finds_splits_keys_and_class_names(data_dir, name, monkeypatch):
    _no_network(monkeypatch)
    found = locate_tfds(name, str(data_dir))

    assert isinstance(found, TfdsSource) and found.name == name
    assert set(found.files) == {"train", "val", "test"}
    assert (found.image_key, found.label_key, found.class_names) == ("image", "label", ["cat", "dog"])
    for tfds_split, split in SPLITS.items():
        paths = found.files[split]
        assert paths and all(Path(p).is_file() for p in paths)
        assert all(Path(p).is_relative_to(data_dir / DS_NAME / "1.0.0") and tfds_split in Path(p).name for p in paths)
        expected = sorted(
            (_example(tfds_split, i)[0].shape, _example(tfds_split, i)[1]) for i in range(COUNTS[tfds_split])
        )
        assert sorted(_read_records(paths)) == expected


def test_works_in_a_process_where_the_builder_is_not_registered(data_dir):
    script = (
        "import json, socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network access attempted')\n"
        "socket.socket.connect = refuse; socket.getaddrinfo = refuse\n"
        "import tensorflow_datasets as tfds\n"
        f"assert {DS_NAME!r} not in tfds.list_builders(with_community_datasets=False)\n"
        "from visionpipe.components.ingest.tfds_source import locate_tfds\n"
        "found = locate_tfds(sys.argv[1], sys.argv[2])\n"
        "print(json.dumps([found.files, found.image_key, found.label_key, found.class_names]))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", script, DS_NAME, str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    files, image_key, label_key, class_names = json.loads(run.stdout.strip().splitlines()[-1])

    assert (image_key, label_key, class_names) == ("image", "label", ["cat", "dog"])
    assert files == locate_tfds(DS_NAME, str(data_dir)).files


def test_missing_dataset_says_what_to_run_without_hanging(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        locate_tfds("mnist", str(tmp_path))
    assert time.monotonic() - start < 60
    message = str(err.value)
    assert f"tfds build mnist --data_dir {tmp_path}" in message
    assert str(tmp_path / "mnist") in message


def test_unknown_name_and_versioned_name_are_not_prepared_errors(tmp_path):
    with pytest.raises(DataError, match="tfds build no_such_dataset_xyz --data_dir"):
        locate_tfds("no_such_dataset_xyz", str(tmp_path))
    with pytest.raises(DataError, match="tfds build mnist:3.0.1 --data_dir"):
        locate_tfds("mnist/3.0.1", str(tmp_path))
    with pytest.raises(DataError, match="not a TFDS name"):
        locate_tfds("not a name!", str(tmp_path))


def test_empty_data_dir_asks_for_the_setting():
    with pytest.raises(DataError, match="data.tfds_data_dir"):
        locate_tfds("mnist", "")


def _broken_copy(data_dir: Path, tmp_path: Path, file: str, edit) -> Path:
    """A copy of the prepared dataset with one metadata JSON edited (or a shard removed)."""
    root = tmp_path / "copy"
    shutil.copytree(data_dir, root)
    version_dir = root / DS_NAME / "1.0.0"
    if file.endswith(".json"):
        path = version_dir / file
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    else:
        next(version_dir.glob(file)).unlink()
    return root


def _drop_train(info):
    info["splits"] = [s for s in info["splits"] if s["name"] != "train"]
    return info


def _drop_label(features):
    del features["featuresDict"]["features"]["label"]
    return features


@pytest.mark.parametrize(
    "file, edit, expected",
    [
        ("dataset_info.json", lambda info: {**info, "fileFormat": "array_record"}, "stored as array_record"),
        ("dataset_info.json", _drop_train, r"no \(non-empty\) train split; its splits are \['test', 'validation'\]"),
        (
            "features.json",
            _drop_label,
            r"needs an Image feature and a ClassLabel feature \(or a Sequence of ClassLabel.*\{'image': 'Image'\}",
        ),
        (f"{DS_NAME}-validation.tfrecord-*", None, "incomplete: split 'validation' is missing 1 of 1 files"),
    ],
)
def test_unusable_prepared_dataset_is_a_data_error(data_dir, tmp_path, file, edit, expected):
    root = _broken_copy(data_dir, tmp_path, file, edit)
    with pytest.raises(DataError, match=expected):
        locate_tfds(DS_NAME, str(root))
