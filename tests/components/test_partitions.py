"""Ingest's global steps a digest range at a time: the split plan made from keys read back by
partition (from disk) and the split index saved by partition equal what one array gives."""

from __future__ import annotations

import io

import numpy as np
import pytest

from visionpipe.components.ingest.config import SplitConfig
from visionpipe.components.ingest.keys import DIGEST, Index, Keys, PartitionedKeys, hex_of
from visionpipe.components.ingest.partitions import DigestPartitions, rows_dtype
from visionpipe.components.ingest.split import Candidate, plan_splits
from visionpipe.data import label_sets


def _keys(rng, n: int, labels: list[str], splits: list[str]) -> list[tuple[str, str, str]]:
    """(sha256 hex, label, given split) triples with copies, copies across splits and copies
    under two labels (a conflict)."""
    contents = [rng.bytes(32).hex() for _ in range(n)]
    items = [(contents[i], labels[i % len(labels)], splits[i % len(splits)]) for i in range(n)]
    copies = [(contents[i], labels[i % len(labels)], splits[(i + 1) % len(splits)]) for i in range(0, n, 37)]
    conflicts = [(contents[i], labels[(i + 1) % len(labels)], splits[i % len(splits)]) for i in range(5, n, 101)]
    everything = items + copies + conflicts
    return [everything[i] for i in rng.permutation(len(everything))]


@pytest.mark.parametrize(
    ("labels", "splits", "task"),
    [
        (["cat", "dog", "owl"], [""], label_sets.SINGLE_LABEL),
        (["cat", "dog"], ["train", "train", "val"], label_sets.SINGLE_LABEL),  # val given: test carved
        ([label_sets.encode(s) for s in (("a",), ("a", "b"), ("b", "c"), ())], [""], label_sets.MULTI_LABEL),
    ],
)
def test_a_plan_from_keys_read_back_by_partition_is_the_plan_of_the_keys_in_memory(labels, splits, task):
    rng = np.random.default_rng(7)
    items = _keys(rng, 3000, labels, splits)
    old = [d for d, _, _ in items[:400]]
    previous = Index.of({d: ("train", "val", "test")[i % 3] for i, d in enumerate(old)})
    rule = SplitConfig(min_test_images=300, min_test_per_class=60)
    in_memory = plan_splits(Keys.of(items), rule, previous, task)
    tasks = [Keys.of(items[i : i + 250]) for i in range(0, len(items), 250)]
    with PartitionedKeys(tasks, flush_rows=100) as by_partition:  # goes to disk after 100 rows
        parts = list(by_partition.parts())
        partitioned = plan_splits(by_partition, rule, previous, task)
    assert len(parts) > 200 and sum(len(p.digests) for p in parts) == len(items)
    assert partitioned.report() == in_memory.report()
    for field in ("bounds", "copies", "conflicted", "strata", "open_splits", "shares"):
        assert getattr(partitioned, field) == getattr(in_memory, field), field
    assert partitioned.duplicated.tolist() == in_memory.duplicated.tolist()
    assert in_memory.copies and in_memory.conflicted and any(t for t, _ in in_memory.bounds.values())
    candidates = [Candidate(f"{i}.png", *item) for i, item in enumerate(items)]
    shared = set(in_memory.copies) | set(in_memory.conflicted)
    reported = partitioned.with_copies(c for c in candidates if c.sha256 in shared)
    assert {"train", "val", "test"} <= {p.split for p in reported.place_all(candidates)}


def test_the_index_saved_by_partition_is_the_merged_index():
    rng = np.random.default_rng(3)
    pool = np.array([rng.bytes(32) for _ in range(2000)] + [b"\0" * 32, b"\xff" + b"\0" * 31], DIGEST)
    old = Index.merged(Index.empty(), pool[:900], rng.integers(1, 4, 900).astype(np.uint8))
    placed = pool[rng.integers(300, len(pool), 1500)]
    codes = np.array([1 + d[0] % 3 if d else 1 for d in placed.tolist()], np.uint8)  # copies share a split
    with DigestPartitions(rows_dtype(split="u1"), flush_rows=64) as partitions:
        for i in range(0, len(placed), 100):
            rows = np.empty(len(placed[i : i + 100]), partitions.dtype)
            rows["digest"], rows["split"] = placed[i : i + 100], codes[i : i + 100]
            partitions.add(rows)
        saved = io.BytesIO()
        Index.save_merged(old, partitions, saved)
    saved.seek(0)
    read, expected = Index.read(saved), Index.merged(old, placed, codes)
    assert [hex_of(d) for d in read.digests.tolist()] == [hex_of(d) for d in expected.digests.tolist()]
    assert read.splits.tolist() == expected.splits.tolist() and len(read.digests) > 1500
