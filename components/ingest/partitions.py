"""Per-image rows (a content digest and a few small fields) set aside by the digest's first
byte and read back one partition at a time, in digest order: an external bucket sort.

The split plan and the split index each need every image's digest grouped or sorted with all
the others. Held in one array, that is about 40 bytes an image at the step's peak several times
over (a million images put the ingest's largest process 200 MB above its size at 100,000).
Partitioned, the step holds one partition (1/256 of the rows) and its buffers: rows go to
local files once the buffers pass ``flush_rows``, so small data never touches the disk.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np

PARTITIONS = 256  # by the digest's first byte
FLUSH_ROWS = 1 << 16  # rows buffered in memory, over all partitions, before they go to disk


def rows_dtype(**fields: str) -> np.dtype:
    """A row type: ``digest`` (S32) first, then ``fields`` (name -> numpy type)."""
    return np.dtype([("digest", "S32"), *fields.items()])


class DigestPartitions:
    """Rows added in any order, read back by ``parts`` partition by partition: every row whose
    digest starts with byte 0, then 1, ...; within a partition in the order added. A context
    manager: its files are removed on exit."""

    def __init__(self, dtype: np.dtype, flush_rows: int = FLUSH_ROWS):
        self.dtype, self._flush_rows = dtype, flush_rows
        self._buffered: list[np.ndarray] = []
        self._buffered_rows = 0
        self._folder: tempfile.TemporaryDirectory | None = None
        self.rows = 0

    def __enter__(self) -> DigestPartitions:
        return self

    def __exit__(self, *_) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def add(self, rows: np.ndarray) -> None:
        self._buffered.append(rows.astype(self.dtype, copy=False))
        self._buffered_rows += len(rows)
        self.rows += len(rows)
        if self._buffered_rows >= self._flush_rows:
            self._flush()

    def parts(self) -> Iterator[np.ndarray]:
        """Every partition's rows (some may be empty), in partition order; as often as asked."""
        if self._folder is None:  # everything is still in memory
            self._buffered = [self._take()]
            self._buffered_rows = len(self._buffered[0])
            yield from _split(self._buffered[0])
            return
        self._flush()
        for p in range(PARTITIONS):
            path = self._path(p)
            yield np.fromfile(path, self.dtype) if os.path.exists(path) else np.empty(0, self.dtype)

    def _take(self) -> np.ndarray:
        rows = np.concatenate(self._buffered) if self._buffered else np.empty(0, self.dtype)
        self._buffered, self._buffered_rows = [], 0
        return rows

    def _flush(self) -> None:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="visionpipe-partitions-")
        for p, part in enumerate(_split(self._take())):
            if len(part):
                with open(self._path(p), "ab") as f:
                    part.tofile(f)

    def _path(self, partition: int) -> str:
        assert self._folder is not None
        return os.path.join(self._folder.name, f"{partition:03d}.rows")


def partition_ranges(digests: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each partition's digests in the sorted array ``digests`` (S32)."""
    firsts = np.array([bytes([p]) for p in range(1, PARTITIONS)], digests.dtype)
    bounds = np.searchsorted(digests, firsts).tolist()
    return list(zip([0, *bounds], [*bounds, len(digests)], strict=True))


def _first_byte(rows: np.ndarray) -> np.ndarray:
    return np.frombuffer(rows["digest"].tobytes(), np.uint8)[:: rows.dtype["digest"].itemsize]


def _split(rows: np.ndarray) -> Iterator[np.ndarray]:
    """``rows`` cut into their ``PARTITIONS`` partitions (in order, each in the order given)."""
    first = _first_byte(rows)
    order = np.argsort(first, kind="stable")
    bounds = np.searchsorted(first[order], np.arange(1, PARTITIONS))
    for part in np.split(order, bounds):
        yield rows[part]
