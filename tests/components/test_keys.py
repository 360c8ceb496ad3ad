"""The split index's merge (where each content went, updated by an ingest) and its file."""

from __future__ import annotations

import io
import json

import numpy as np

from visionpipe.components.ingest.keys import DIGEST, Index, StoredIndex


def test_merge_keeps_one_entry_per_digest_and_the_placed_split_wins():
    rng = np.random.default_rng(0)
    pool = np.frombuffer(rng.bytes(32 * 60), dtype=DIGEST)
    pool = np.array([d.ljust(32, b"\0") for d in pool.tolist()][:59] + [b"\x01" + b"\0" * 31], DIGEST)  # a zero tail
    for _ in range(200):
        old_digests = np.unique(pool[rng.integers(0, len(pool), rng.integers(0, 50))])
        old = Index(old_digests, rng.integers(1, 4, len(old_digests)).astype(np.uint8))
        placed = pool[rng.integers(0, len(pool), rng.integers(0, 60))]
        codes = np.array([1 + d[0] % 3 for d in placed.tolist()], np.uint8)  # copies share a split
        merged = Index.merged(old, placed, codes)
        expected = dict(zip(old.digests.tolist(), old.splits.tolist(), strict=True))
        expected.update(zip(placed.tolist(), codes.tolist(), strict=True))
        assert merged.digests.tolist() == sorted(expected)
        assert merged.splits.tolist() == [expected[d] for d in sorted(expected)]


def test_a_stored_index_reads_back_what_was_saved(tmp_path):
    index = Index.merged(Index.empty(), np.array([b"b" * 32, b"a" * 32], DIGEST), np.array([3, 1], np.uint8))
    stored = StoredIndex.save(index, str(tmp_path / "index.npz"))
    assert stored.size == 2 and stored.lookup(np.array([b"a" * 32, b"c" * 32], DIGEST)).tolist() == [1, 0]
    assert Index.read(io.BytesIO((tmp_path / "index.npz").read_bytes())).digests.tolist() == [b"a" * 32, b"b" * 32]
    StoredIndex.release()


def test_a_previous_index_is_copied_for_the_workers_with_its_size(tmp_path):
    from visionpipe.components.ingest.keys import INDEX_FILE, OLD_INDEX_FILE

    index = Index.merged(
        Index.empty(), np.array([b"b" * 32, b"a" * 32, b"c" * 32], DIGEST), np.array([3, 1, 2], np.uint8)
    )
    (tmp_path / "new").mkdir()
    with (tmp_path / "new" / INDEX_FILE).open("wb") as f:
        index.save(f)
    (tmp_path / "old").mkdir()  # an index written before 2026-12
    (tmp_path / "old" / OLD_INDEX_FILE).write_text(json.dumps({(b"a" * 32).hex(): "train"}))
    for folder, size in (("new", 3), ("old", 1)):
        stored = StoredIndex.copy(tmp_path / folder, str(tmp_path / f"{folder}-copy.npz"))
        assert stored.size == size and stored.index.as_dict() == Index.load(tmp_path / folder).as_dict()
        StoredIndex.release()
