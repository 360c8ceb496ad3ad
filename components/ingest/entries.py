"""The listed image files, held compactly: every path in one byte buffer, labels and splits as
small codes.

A million listed files take about 60 MB this way, against about 170 MB as a list of named
tuples of strings (and as much again for every copy made while sorting or pickling it), so the
driver's memory stays flat as the data grows. Workers read the same compact form from the file
the driver writes (``save`` / ``load``) and index into it.
"""

from __future__ import annotations

import hashlib
import io
import json
from array import array
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

import numpy as np

from visionpipe.components.ingest.keys import SPLIT_NAMES, split_code, write_arrays


class Entry(NamedTuple):
    path: str  # the image file
    label: str  # class name; for multi-label data the label set as ``label_sets.encode`` spells it
    split: str = ""  # given by the user's layout or manifest; "" = visionpipe assigns it


class Entries:
    """A sequence of ``Entry``: append, len, iterate, index."""

    def __init__(self, entries: Iterable[Entry] = ()):
        self._paths = bytearray()
        self._ends = array("q")  # where each path ends in ``_paths``
        self._names: list[str] = []  # label strings; a code is a position
        self._codes: dict[str, int] = {}
        self._labels = array("I")
        self._splits = array("B")
        for entry in entries:
            self.append(entry)

    def append(self, entry: Entry) -> None:
        self._paths += entry.path.encode()
        self._ends.append(len(self._paths))
        if entry.label not in self._codes:
            self._codes[entry.label] = len(self._names)
            self._names.append(entry.label)
        self._labels.append(self._codes[entry.label])
        self._splits.append(split_code(entry.split))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> Entry:
        start = self._ends[i - 1] if i else 0
        path = self._paths[start : self._ends[i]].decode()
        return Entry(path, self._names[self._labels[i]], SPLIT_NAMES[self._splits[i]])

    def __iter__(self) -> Iterator[Entry]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other) -> bool:
        return isinstance(other, Entries) and list(self) == list(other)

    def spread(self) -> Entries:
        """The entries in the order of a hash of their paths: a fixed order that mixes classes
        (sources come in class order; see the executor's note on tasks)."""
        keys = np.array([hashlib.sha1(self[i].path.encode()).digest() for i in range(len(self))], dtype="S20")
        return Entries(self[i] for i in np.argsort(keys, kind="stable").tolist())

    def save(self, f: BinaryIO) -> None:
        write_arrays(
            f,
            paths=np.frombuffer(bytes(self._paths), np.uint8),
            ends=np.asarray(self._ends, np.int64),
            names=np.frombuffer(json.dumps(self._names).encode(), np.uint8),
            labels=np.asarray(self._labels, np.uint32),
            splits=np.asarray(self._splits, np.uint8),
        )

    @classmethod
    def load(cls, f: BinaryIO) -> Entries:
        entries = cls()
        with np.load(io.BytesIO(f.read())) as saved:
            entries._paths = bytearray(saved["paths"].tobytes())
            entries._ends.frombytes(saved["ends"].astype(np.int64).tobytes())
            entries._names = json.loads(saved["names"].tobytes())
            entries._codes = {name: i for i, name in enumerate(entries._names)}
            entries._labels.frombytes(saved["labels"].astype(np.uint32).tobytes())
            entries._splits.frombytes(saved["splits"].tobytes())
        return entries
