"""The ``data`` section: where the images come from and how they are split (the ingest stage's settings)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from visionpipe.pipeline.typed_tree import ConfigError, check_range


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Shares of each class per split, where visionpipe assigns splits or carves a split that a
    pre-split layout lacks out of its train images. 0 = the split is deliberately absent:
    val 0 trains on all of train (no early stopping); test 0 evaluates on val."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    # A test split that visionpipe makes (assigned or carved) is sized from the data, not only
    # from ``test``: on a few hundred images 10% is a couple of dozen, and a 95% interval on 27
    # images is about 0.37 wide, too wide to tell a model from always answering one class. So
    # each class gives the test split at least ``min_test_per_class`` images and the split holds
    # at least ``min_test_images`` in all (spread over the classes in proportion; 60 images give
    # an accuracy interval about 0.25 wide at worst, evaluate.max_interval_width), but never more
    # than ``max_test_share`` of a class for these minimums: training keeps the rest. Classes big
    # enough for ``test`` alone to give more are unchanged (CIFAR, MNIST).
    min_test_images: int = 60
    min_test_per_class: int = 10
    max_test_share: float = 0.25
    # The data is too small for a separate test split when that rule gives fewer images than
    # this: then no test split is made (its images train), evaluate scores val, and the gate's
    # verdict is at best INCONCLUSIVE (val chose the kept epoch). Only when there is a val split.
    min_test_size: int = 20

    def __post_init__(self):
        check_range("data.split.min_test_images", self.min_test_images, 0)
        check_range("data.split.min_test_per_class", self.min_test_per_class, 0)
        check_range("data.split.max_test_share", self.max_test_share, 0.0, 0.9)
        check_range("data.split.min_test_size", self.min_test_size, 0)


@dataclasses.dataclass(frozen=True)
class TFRecordSourceConfig:
    """Feature names in a user's TFRecords of tf.train.Example (data.source == "tfrecord")."""

    image_key: str = "image/encoded"
    label_key: str = "image/class/label"  # int64 class id or bytes class name
    split_key: str = ""  # optional bytes feature holding train/val/test; "" = visionpipe splits
    class_names: tuple[str, ...] = ()  # names of int64 label ids, in id order; () = the ids


@dataclasses.dataclass(frozen=True)
class LabelsConfig:
    """How a label field is read: one class per image, or a set of labels (multi-label)."""

    # auto: multi-label when some manifest row's label is a JSON list or holds the delimiter, or
    # when a TFDS dataset's label is a Sequence of ClassLabel and it has no ClassLabel (the ingest
    # summary says which task it chose and why); folders and TFRecords are single-label unless
    # this says multi_label.
    task: Literal["auto", "single_label", "multi_label"] = "auto"
    delimiter: str = "|"  # between the labels of a CSV field or a JSONL string, e.g. "cat|dog"
    # The fixed label set of multi-label data; an image carrying any other label is quarantined
    # with its line. () = the labels the data holds.
    vocabulary: tuple[str, ...] = ()
    # Multi-label: an image may carry no label at all (a negative example). Off, such a row is
    # quarantined: an empty field is more often a mistake than a deliberate negative.
    allow_empty: bool = False

    def __post_init__(self):
        if not self.delimiter.strip():
            raise ConfigError("data.labels.delimiter must be a visible character such as | or ;")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ConfigError("data.labels.vocabulary names a label twice")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: Literal["builtin", "folder", "manifest", "tfrecord", "tfds"] = "builtin"
    # folder: <path>/<class>/**/<image> or <path>/{train,val,test}/<class>/**/<image>;
    # manifest: a .csv or .jsonl file with path, label and optional split;
    # tfrecord: a file pattern, e.g. /data/records/*.tfrecord. Local or any Beam filesystem.
    path: str = ""
    builtin_name: Literal["mnist5k"] = "mnist5k"
    tfrecord: TFRecordSourceConfig = TFRecordSourceConfig()
    tfds_name: str = ""  # e.g. "mnist" or "mnist/3.0.1", prepared under tfds_data_dir
    tfds_data_dir: str = ""
    split: SplitConfig = SplitConfig()
    labels: LabelsConfig = LabelsConfig()
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
    max_pixels: int = 50_000_000  # larger images are quarantined as possible decompression bombs
    pixel_stats_sample: int = 10000  # about this many images give the pixel mean/std; 0 = all
    # Curation, applied by the next ingest (components/ingest/curation.py; your files are never
    # changed): ``exclude`` names images to leave out: a text file with one path a line, or a CSV
    # with a ``path`` column and optional ``action`` (drop, relabel or keep) and ``new_label``
    # columns, such as the data_quality stage's findings.csv. ``relabel`` is a CSV with ``path``
    # and ``label`` columns. Relative paths are taken from the data's folder (the manifest's folder).
    exclude: str = ""
    relabel: str = ""


MANIFEST_SUFFIXES = (".csv", ".jsonl")
