"""Compact arrays of what the split plan needs of each image: its content hash, its label and
the split its source gave it, plus the index of where earlier ingests put each content hash.

A million images are about 40 MB this way (a 32-byte digest, a label code and a split code
each), against well over a gigabyte as Python tuples of strings. Even so they never travel
through the Beam runner, whose buffers would hold every copy: the keys wait in the tasks' spill
files, and the previous index goes to the workers as a ``StoredIndex`` (a file's path).

Digests are numpy ``S32`` values. numpy drops trailing zero bytes when it hands one back as
Python ``bytes``, so they go back to hex through ``hex_of``, never ``bytes.hex``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from apache_beam.io.filesystems import FileSystems

from visionpipe.components.ingest.partitions import FLUSH_ROWS, DigestPartitions, partition_ranges, rows_dtype

SPLIT_NAMES = ("", "train", "val", "test")  # a split code is its position; 0: none given
DIGEST = "S32"
INDEX_FILE = "split_index.npz"  # in the Examples folder: an ``Index``
OLD_INDEX_FILE = "split_index.json"  # written by visionpipe before 2026-12: {sha256 hex: split}


def write_arrays(f: BinaryIO, **arrays: Any) -> None:
    """``np.savez`` into ``f``, which may be a Beam FileSystems file (np.savez seeks; they cannot).
    Through a local temporary file, not memory: at a million images a buffer and its copy were
    two more copies of the arrays at the stage's peak."""
    with tempfile.TemporaryFile() as staged:
        np.savez(staged, **arrays)
        staged.seek(0)
        shutil.copyfileobj(staged, f, _COPY_CHUNK)


_COPY_CHUNK = 8 << 20


def numpy_readable(path: str) -> BinaryIO | str:
    """``path`` as ``np.load`` takes it: a local path as it is (read in place, no copy of the file
    in memory); a Beam FileSystems file as its bytes (Beam's files cannot seek, np.load does)."""
    if FileSystems.get_scheme(path) is None:
        return path
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return io.BytesIO(f.read())


def split_code(split: str) -> int:
    return SPLIT_NAMES.index(split)


def digests(hexes: Iterable[str]) -> np.ndarray:
    return np.array([bytes.fromhex(h) for h in hexes], dtype=DIGEST)


def hex_of(digest: bytes) -> str:
    return digest.ljust(32, b"\0").hex()


class Keys(NamedTuple):
    """Per image, in one order: content digest, label (a code into ``labels``), given split."""

    digests: np.ndarray  # S32
    labels: tuple[str, ...]  # sorted label strings (label sets for multi-label data)
    label_codes: np.ndarray  # int32 positions in ``labels``
    given: np.ndarray  # uint8 split codes

    @classmethod
    def of(cls, items: Sequence[tuple[str, str, str]]) -> Keys:
        """From (sha256 hex, label, given split) triples."""
        labels = tuple(sorted({label for _, label, _ in items}))
        code = {label: i for i, label in enumerate(labels)}
        return cls(
            digests(sha for sha, _, _ in items),
            labels,
            np.array([code[label] for _, label, _ in items], np.int32),
            np.array([split_code(split) for _, _, split in items], np.uint8),
        )

    def parts(self) -> Iterator[Keys]:
        """The keys in parts that each hold every copy of their digests: here, one part."""
        yield self


class PartitionedKeys:
    """Every task's ``Keys``, set aside by digest (``partitions.DigestPartitions``) and read back
    by ``parts`` a digest range at a time, so the split plan never holds them all. A context
    manager: its files are removed on exit."""

    def __init__(self, tasks: Iterable[Keys], flush_rows: int = FLUSH_ROWS):
        self._rows = DigestPartitions(rows_dtype(label="<i4", given="u1"), flush_rows)
        codes: dict[str, int] = {}  # label -> its code in the rows: in the order first seen
        for keys in tasks:
            recode = np.array([codes.setdefault(label, len(codes)) for label in keys.labels] or [0], np.int32)
            rows = np.empty(len(keys.digests), self._rows.dtype)
            rows["digest"], rows["label"], rows["given"] = keys.digests, recode[keys.label_codes], keys.given
            self._rows.add(rows)
        self.labels = tuple(sorted(codes))
        position = {label: i for i, label in enumerate(self.labels)}
        self._sorted_code = np.array([position[label] for label in codes] or [0], np.int32)

    def __enter__(self) -> PartitionedKeys:
        return self

    def __exit__(self, *exc) -> None:
        self._rows.__exit__(*exc)

    def parts(self) -> Iterator[Keys]:
        for rows in self._rows.parts():
            if len(rows):
                yield Keys(rows["digest"], self.labels, self._sorted_code[rows["label"]], rows["given"])


class Index(NamedTuple):
    """Content digest -> split code, sorted by digest: where each image an ingest placed went."""

    digests: np.ndarray  # S32, sorted, unique
    splits: np.ndarray  # uint8 split codes

    @classmethod
    def empty(cls) -> Index:
        return cls(np.array([], DIGEST), np.array([], np.uint8))

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> Index:
        codes = np.array([split_code(s) for s in mapping.values()], np.uint8)
        return cls.merged(cls.empty(), digests(mapping), codes)

    @classmethod
    def merged(cls, old: Index | StoredIndex, placed: np.ndarray, codes: np.ndarray) -> Index:
        """``old`` updated with the ``placed`` digests and their split ``codes``; placed wins.

        The placed digests are sorted on their own and the old index (sorted already) is merged
        in, rather than sorting both together: at a million images that halves the peak."""
        order = np.argsort(placed, kind="stable")
        new, codes = placed[order], codes[order]
        del order
        first = np.ones(len(new), bool)  # copies of one content share a split: keep one
        first[1:] = new[1:] != new[:-1]
        new, codes = new[first], codes[first]
        kept = cls(new, codes).lookup(old.digests) == 0  # old digests no placed one replaces
        at = np.searchsorted(new, old.digests[kept])
        return cls(np.insert(new, at, old.digests[kept]), np.insert(codes, at, old.splits[kept]))

    @staticmethod
    def save_merged(old: Index | StoredIndex, placed: DigestPartitions, f: BinaryIO) -> None:
        """``merged(old, placed digests, their split codes)`` saved into ``f`` a digest range at a
        time: the placed rows (``rows_dtype(split="u1")``) are never all in memory."""
        with tempfile.TemporaryFile() as digest_file, tempfile.TemporaryFile() as split_file:
            size, old_digests = 0, old.digests
            for (lo, hi), rows in zip(partition_ranges(old_digests), placed.parts(), strict=True):
                part = Index.merged(Index(old_digests[lo:hi], old.splits[lo:hi]), rows["digest"], rows["split"])
                digest_file.write(part.digests.astype(DIGEST).tobytes())
                split_file.write(part.splits.astype(np.uint8).tobytes())
                size += len(part.digests)
            with tempfile.TemporaryFile() as staged:
                with zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED, allowZip64=True) as zipped:
                    for name, dtype, column in (("digests", DIGEST, digest_file), ("splits", np.uint8, split_file)):
                        with zipped.open(f"{name}.npy", "w", force_zip64=True) as member:
                            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
                            np.lib.format.write_array_header_1_0(member, {**header, "shape": (size,)})
                            column.seek(0)
                            shutil.copyfileobj(column, member, _COPY_CHUNK)
                staged.seek(0)
                shutil.copyfileobj(staged, f, _COPY_CHUNK)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The split code of each digest in ``keys``; 0 where the index does not hold it."""
        if not len(self.digests):
            return np.zeros(len(keys), np.uint8)
        at = np.minimum(np.searchsorted(self.digests, keys), len(self.digests) - 1)
        return np.where(self.digests[at] == keys, self.splits[at], 0).astype(np.uint8)

    def as_dict(self) -> dict[str, str]:
        return {hex_of(d): SPLIT_NAMES[c] for d, c in zip(self.digests.tolist(), self.splits.tolist(), strict=True)}

    def save(self, f: BinaryIO) -> None:
        """Into ``f`` (``INDEX_FILE`` in the Examples folder); a zip of two arrays, 33 bytes an image."""
        write_arrays(f, digests=self.digests, splits=self.splits)

    @classmethod
    def read(cls, f: BinaryIO | str) -> Index:
        """The index ``save`` wrote into ``f`` (a seekable file or a local path)."""
        with np.load(f) as saved:
            return cls(saved["digests"].astype(DIGEST, copy=False), saved["splits"])

    @classmethod
    def load(cls, folder: Path) -> Index:
        """The index an ingest wrote into ``folder``; empty when it wrote none."""
        if (folder / INDEX_FILE).is_file():
            with (folder / INDEX_FILE).open("rb") as f:
                return cls.read(f)
        if (folder / OLD_INDEX_FILE).is_file():
            return cls.of(json.loads((folder / OLD_INDEX_FILE).read_text()))
        return cls.empty()


@dataclasses.dataclass(frozen=True)
class StoredIndex:
    """An ``Index`` in a file that every worker can read (under the ingest's scratch folder). It
    pickles as its path, so the pipeline graph and the split plan stay small however many images
    earlier ingests placed; each process reads the file once, when it first looks a digest up."""

    path: str
    size: int  # digests in the index

    @classmethod
    def save(cls, index: Index, path: str) -> StoredIndex:
        with FileSystems.create(path) as f:
            index.save(f)
        return cls(path, len(index.digests))

    @classmethod
    def copy(cls, folder: Path, path: str) -> StoredIndex:
        """The index an ingest wrote into ``folder``, copied to ``path`` without reading it into
        memory (an index from before 2026-12, JSON, is converted)."""
        if not (folder / INDEX_FILE).is_file():
            return cls.save(Index.load(folder), path)
        with (folder / INDEX_FILE).open("rb") as saved, FileSystems.create(path) as f:
            shutil.copyfileobj(saved, f, _COPY_CHUNK)
        with zipfile.ZipFile(folder / INDEX_FILE) as zipped, zipped.open("digests.npy") as member:
            version = np.lib.format.read_magic(member)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return cls(path, header(member)[0][0])

    @property
    def index(self) -> Index:
        return _read_index(self.path)

    @property
    def digests(self) -> np.ndarray:
        return self.index.digests

    @property
    def splits(self) -> np.ndarray:
        return self.index.splits

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        return self.index.lookup(keys)

    @staticmethod
    def release() -> None:
        """Drops this process's copy (the driver's, when the pipeline ran in it)."""
        _read_index.cache_clear()


@functools.lru_cache(maxsize=1)  # one ingest's index per process: the newest one
def _read_index(path: str) -> Index:
    return Index.read(numpy_readable(path))
