"""The listed image files, held compactly: each path as its folder (a code into the list of
folders) and its file name (in one byte buffer), labels and splits as small codes.

A million listed files take about 27 MB this way, against about 170 MB as a list of named
tuples of strings (and as much again for every copy made while sorting or pickling it), so the
driver's memory stays flat as the data grows. Workers read the same compact form from the file
the driver writes (``save`` / ``load``) and index into it. The order the workers take files in
(``spread``) is a permutation stored beside the entries, not a second copy of them.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from visionpipe.components.ingest.keys import SPLIT_NAMES, split_code, write_arrays


class Entry(NamedTuple):
    path: str  # the image file
    label: str  # class name; for multi-label data the label set as ``label_sets.encode`` spells it
    split: str = ""  # given by the user's layout or manifest; "" = visionpipe assigns it


# Paths are hashed this many at a time for ``spread``: a list of a million digests as bytes
# objects would hold about 60 MB.
_HASH_CHUNK = 65_536


class Entries:
    """A sequence of ``Entry``: append, len, iterate, index."""

    def __init__(self, entries: Iterable[Entry] = ()):
        self._folders: list[str] = []  # each with its trailing "/"; a code is a position
        self._folder_codes: dict[str, int] = {}
        # The per-entry buffers grow as arrays while listing and are numpy arrays once loaded.
        self._folder_of: Any = array("I")
        self._names: Any = bytearray()  # file names, one after another
        self._ends: Any = array("q")  # where each name ends in ``_names``
        self._labels_named: list[str] = []  # label strings; a code is a position
        self._label_codes: dict[str, int] = {}
        self._labels: Any = array("I")
        self._splits: Any = array("B")
        self._order: np.ndarray | None = None  # positions in the order of ``spread``; None: as listed
        for entry in entries:
            self.append(entry)

    def append(self, entry: Entry) -> None:
        if self._order is not None or isinstance(self._names, np.ndarray):
            raise TypeError("a spread or loaded listing is read-only")
        folder, slash, name = entry.path.rpartition("/")
        self._folder_of.append(_code(self._folder_codes, self._folders, folder + slash))
        self._names += name.encode()
        self._ends.append(len(self._names))
        self._labels.append(_code(self._label_codes, self._labels_named, entry.label))
        self._splits.append(split_code(entry.split))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> Entry:
        at = int(self._order[i]) if self._order is not None else i
        start = int(self._ends[at - 1]) if at else 0
        name = bytes(self._names[start : int(self._ends[at])]).decode()
        path = self._folders[int(self._folder_of[at])] + name
        return Entry(path, self._labels_named[int(self._labels[at])], SPLIT_NAMES[int(self._splits[at])])

    def __iter__(self) -> Iterator[Entry]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other) -> bool:
        return isinstance(other, Entries) and list(self) == list(other)

    def spread(self) -> Entries:
        """The same entries in the order of a hash of their paths: a fixed order that mixes
        classes (sources come in class order; see the executor's note on tasks). A view: the
        entries are shared, only the order (4 bytes an entry) is new."""
        keys = np.empty(len(self), np.uint64)
        for start in range(0, len(self), _HASH_CHUNK):
            stop = min(start + _HASH_CHUNK, len(self))
            prefixes = b"".join(hashlib.sha1(self[i].path.encode()).digest()[:8] for i in range(start, stop))
            keys[start:stop] = np.frombuffer(prefixes, ">u8")
        view = self._view()
        view._order = np.argsort(keys, kind="stable").astype(np.uint32 if len(self) < 2**32 else np.int64)
        return view

    def _view(self) -> Entries:
        view = Entries()
        view.__dict__.update(self.__dict__)
        return view

    def save(self, f: BinaryIO) -> None:
        order = self._order if self._order is not None else np.array([], np.uint32)
        write_arrays(
            f,
            folders=_json_bytes(self._folders),
            folder_of=np.frombuffer(self._folder_of, np.uint32),
            names=np.frombuffer(self._names, np.uint8),
            ends=np.frombuffer(self._ends, np.int64),
            labels_named=_json_bytes(self._labels_named),
            labels=np.frombuffer(self._labels, np.uint32),
            splits=np.frombuffer(self._splits, np.uint8),
            order=order,
            spread=np.array(self._order is not None),
        )

    @classmethod
    def load(cls, f: BinaryIO | str) -> Entries:
        """From a seekable file or a local path (read in place, without a copy in memory)."""
        entries = cls()
        with np.load(f) as saved:
            entries._folders = json.loads(saved["folders"].tobytes())
            entries._folder_of = saved["folder_of"]
            entries._names = saved["names"]
            entries._ends = saved["ends"]
            entries._labels_named = json.loads(saved["labels_named"].tobytes())
            entries._labels = saved["labels"]
            entries._splits = saved["splits"]
            entries._order = saved["order"] if bool(saved["spread"]) else None
        return entries


def _code(codes: dict[str, int], named: list[str], value: str) -> int:
    if value not in codes:
        codes[value] = len(named)
        named.append(value)
    return codes[value]


def _json_bytes(value: list[str]) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), np.uint8)
