"""The ingest workers' first job: read and check every item of a task.

A task is a slice of one page of the source listing (files) or a batch of TFRecord records.
Each item is read, fully decoded, hashed and measured (``images.check_image``); the candidates, their
measurements, the serialized Examples (still without label ids, which need every task's
classes) and the task's ``Keys`` (what the split plan needs, about 40 bytes an image) wait in a
spill file, and only a small ``TaskResult`` of the task travels through the runner: nothing
that grows with the images is held in the runner's buffers. Taking a few hundred items per call
keeps Beam's per-element cost out of the per-image cost.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from visionpipe.components.ingest import curation, sources
from visionpipe.components.ingest.config import SplitConfig
from visionpipe.components.ingest.entries import Entries
from visionpipe.components.ingest.keys import Index, Keys, PartitionedKeys, StoredIndex, numpy_readable
from visionpipe.components.ingest.split import Candidate, Plan, plan_splits
from visionpipe.data import images, label_sets, record_format
from visionpipe.data.image_stats import ImageMeta

SPILL_SUFFIX = ".spill"  # <uuid>.<items in the task>.spill: the driver counts progress from the names


class Curated(NamedTuple):
    """An item a curation row acted on: left out (not even read) or ingested under a new label."""

    source: str
    action: str  # curation.DROP or curation.RELABEL
    old_label: str  # "" for a dropped item (it is not read)
    new_label: str
    kind: str  # the data_quality finding's kind, or curation.LISTED
    reason: str
    origin: str  # the curation file and line

    @classmethod
    def of(cls, source: str, decision: curation.Decision, old_label: str = "") -> Curated:
        d = decision
        return cls(source, d.action, old_label, d.label, d.kind, d.reason, d.origin)


class TaskResult(NamedTuple):
    spill: str  # the checked items' keys (``read_keys``), the items and their records (``read_spill``)
    quarantined: list[tuple[str, str]]  # (item, reason)
    curated: list[Curated]  # items data.exclude left out or data.relabel relabelled
    records: int  # TFRecord records the task held (0 for a task of files, which the listing counts)


# One pickle per task result: Beam's default coder would encode every nested named tuple
# on its own, pickling its type each time, and that cost more than checking the image.
beam.coders.registry.register_coder(TaskResult, beam.coders.PickleCoder)


# Tasks per listing page: a worker reads the page of each task it takes (a few hundred KB at
# most), never the whole listing, and the driver writes a few hundred pages at a million files
# (one file per task would be thousands of objects on a remote store).
TASKS_PER_PAGE = 16


def write_listing(entries: Entries, folder: str, files_per_task: int) -> list[tuple[str, int, int]]:
    """The listed files in pages under ``folder`` (cheaper than pickling them into the graph);
    returns the tasks: (page, first entry, entry after the last) each."""
    tasks = []
    page_size = files_per_task * TASKS_PER_PAGE
    for first in range(0, len(entries), page_size):
        page = FileSystems.join(folder, f"listing-{first // page_size:06d}.npz")
        with FileSystems.create(page) as f:
            Entries(entries[i] for i in range(first, min(first + page_size, len(entries)))).save(f)
        size = min(page_size, len(entries) - first)
        tasks += [(page, start, min(start + files_per_task, size)) for start in range(0, size, files_per_task)]
    return tasks


def spilled_items(names: list[str]) -> int:
    """Items checked so far, from the names of the spill files written."""
    return sum(int(name.split(".")[-2]) for name in names if name.endswith(SPILL_SUFFIX))


class _CheckTask(beam.DoFn):
    """Checks a task's items; subclasses say how an item becomes (candidate, image bytes)."""

    def __init__(
        self, max_pixels: int, channels: int, pixel_fraction: float, spill_dir: str, decisions: curation.Curation
    ):
        self._max_pixels, self._channels = max_pixels, channels
        self._pixel_fraction, self._spill_dir = pixel_fraction, spill_dir
        self._curation = decisions

    def items(self, task) -> Iterator[tuple[str, Callable[[], tuple[bytes, str, str]]]]:
        """(item name, read) pairs; read() -> (image bytes, label, given split) or raises."""
        raise NotImplementedError

    def process(self, task):
        checked, examples, quarantined, curated = [], [], [], []
        for where, read in self.items(task):
            decision = self._curation.decide(where)
            if decision is not None and decision.action == curation.DROP:
                curated.append(Curated.of(where, decision))
                continue
            try:
                data, given_label, split = read()
                # RELABEL: the split plan and the record see the new label
                label = given_label if decision is None else decision.label
                image = images.check_image(data, self._max_pixels, self._channels, self._pixel_fraction)
            except (images.BadImage, ValueError) as err:
                quarantined.append((where, str(err)))
            except OSError as err:  # unreadable file, broken symlink, permission denied
                quarantined.append((where, f"cannot read file: {err.strerror or err}"))
            else:
                if decision is not None:  # recorded once the image is ingested (a quarantined one is not)
                    curated.append(Curated.of(where, decision, given_label))
                meta = ImageMeta(
                    label,
                    image.format,
                    image.mode,
                    image.height,
                    image.width,
                    image.channels,
                    image.converted,
                    image.pixels,
                )
                checked.append((Candidate(where, image.sha256, label, split), meta))
                examples.append(record_format.serialize_unlabelled(image.record(label, where)))
        dropped = sum(c.action == curation.DROP for c in curated)
        name = f"{uuid.uuid4().hex}.{len(checked) + len(quarantined) + dropped}{SPILL_SUFFIX}"
        spill = FileSystems.join(self._spill_dir, name)
        keys = Keys.of([(c.sha256, c.label, c.split) for c, _ in checked])
        with FileSystems.create(spill) as f:  # three pickles: the plan reads the first one or two
            for part in (keys, checked, examples):
                pickle.dump(part, f, protocol=pickle.HIGHEST_PROTOCOL)
        yield TaskResult(spill, quarantined, curated, self.records(task))

    def records(self, task) -> int:
        return 0


def read_keys(spill: str) -> Keys:
    """The keys of a task's checked items, in their order."""
    with FileSystems.open(spill, compression_type="uncompressed") as f:
        return pickle.load(f)


def read_spill(spill: str, examples: bool = True) -> tuple[Keys, list[tuple[Candidate, ImageMeta]], list[bytes]]:
    """A task's keys, checked (candidate, measurements) pairs and (``examples``) their unlabelled
    records."""
    with FileSystems.open(spill, compression_type="uncompressed") as f:
        keys, checked = pickle.load(f), pickle.load(f)
        return keys, checked, pickle.load(f) if examples else []


def plan_of(spills: list[str], rule: SplitConfig, previous: Index | StoredIndex, task: str) -> Plan:
    """The split plan of every task's keys, read from their spills; its reports are made from the
    candidates of the contents several images share, read from the spills that hold them."""
    with PartitionedKeys(read_keys(spill) for spill in spills) as keys:
        plan = plan_splits(keys, rule, previous, task)
    copies = []
    for spill in spills if len(plan.duplicated) else ():  # no shared content: no spill to read again
        shared = np.isin(read_keys(spill).digests, plan.duplicated)
        if shared.any():
            _, checked, _ = read_spill(spill, examples=False)
            copies += [checked[i][0] for i in np.flatnonzero(shared).tolist()]
    return plan.with_copies(copies)


class CheckFiles(_CheckTask):
    """A task is a (listing page, start, stop) slice of a page's entries."""

    def items(self, task):
        page, start, stop = task
        entries = _read_page(page)
        for i in range(start, stop):
            path, label, split = entries[i]
            yield path, functools.partial(_read_file, path, label, split)


@functools.lru_cache(maxsize=1)  # tasks of one page often follow each other; a page is small
def _read_page(page: str) -> Entries:
    return Entries.load(numpy_readable(page))


def _read_file(path: str, label: str, split: str) -> tuple[bytes, str, str]:
    if FileSystems.get_scheme(path) is None:  # local: skip FileSystems' per-call plugin lookup
        with open(path, "rb") as f:
            return f.read(), label, split
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read(), label, split


class CheckRecords(_CheckTask):
    """A task is a list of (TFRecord file, serialized tf.train.Example) pairs."""

    def __init__(self, keys: sources.RecordFiles, *args):
        super().__init__(*args)
        self._keys = keys
        self._file_splits = dict(keys.files)

    def records(self, task) -> int:
        return len(task)

    def items(self, task):
        for filename, raw in task:
            yield f"{filename}#{hashlib.sha256(raw).hexdigest()[:12]}", functools.partial(self._fields, filename, raw)

    def _fields(self, filename: str, raw: bytes) -> tuple[bytes, str, str]:
        keys = self._keys
        try:
            feature = record_format.example_pb2.Example.FromString(raw).features.feature
        except Exception:
            raise ValueError("not a serialized tf.train.Example") from None
        for key, setting in ((keys.image_key, "image_key"), (keys.label_key, "label_key")):
            if key not in feature:
                raise ValueError(
                    f"record has no feature {key!r} (it has {', '.join(sorted(feature))}); set data.tfrecord.{setting}"
                )
        data = bytes(feature[keys.image_key].bytes_list.value[0]) if feature[keys.image_key].bytes_list.value else b""
        label = _record_label(feature[keys.label_key], keys)
        split = self._file_splits.get(filename, "")
        if keys.split_key and feature[keys.split_key].bytes_list.value:
            given = feature[keys.split_key].bytes_list.value[0].decode().lower()
            if given not in sources.SPLIT_ALIASES:
                raise ValueError(f"split {given!r} in feature {keys.split_key!r} is not one of train, val, test")
            split = sources.SPLIT_ALIASES[given]
        return data, label, split


def _record_label(label_feature, keys: sources.RecordFiles) -> str:
    """A record's class name, or (multi-label) its label set: names (bytes), ids (int64, named by
    ``data.tfrecord.class_names``) or a multi-hot vector (floats, one per class name)."""
    multi = keys.labels.task == label_sets.MULTI_LABEL
    if label_feature.bytes_list.value:
        names = [value.decode() for value in label_feature.bytes_list.value]
    elif label_feature.int64_list.value:
        names = [_class_name(label_id, keys) for label_id in label_feature.int64_list.value]
    elif multi and label_feature.float_list.value:
        hot = label_feature.float_list.value
        if keys.class_names and len(hot) != len(keys.class_names):
            raise ValueError(
                f"multi-hot label of length {len(hot)}, but data.tfrecord.class_names names {len(keys.class_names)}"
            )
        names = [_class_name(i, keys) for i, value in enumerate(hot) if value >= 0.5]
    elif not multi:
        raise ValueError(f"feature {keys.label_key!r} is empty; every record needs a label")
    else:
        names = []
    if not multi:
        return names[0]
    return sources.checked_label_set(label_sets.parse(names, keys.labels.delimiter), keys.labels, "record")


def _class_name(label_id: int, keys: sources.RecordFiles) -> str:
    if keys.class_names and not 0 <= label_id < len(keys.class_names):
        raise ValueError(f"label id {label_id} is outside data.tfrecord.class_names (0..{len(keys.class_names) - 1})")
    return keys.class_names[label_id] if keys.class_names else str(label_id)
