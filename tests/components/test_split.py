from collections import Counter

from components.ingest.split import assign_splits, split_sizes

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_sizes_follow_fractions_and_keep_every_split_non_empty():
    assert split_sizes(100, FRACTIONS) == {"val": 10, "test": 10, "train": 80}
    assert split_sizes(5, FRACTIONS) == {"val": 1, "test": 1, "train": 3}
    assert split_sizes(2, FRACTIONS)["train"] == 2


def test_zero_fraction_gives_an_empty_split():
    assert split_sizes(50, {"train": 0.9, "val": 0.1, "test": 0.0})["test"] == 0


def test_assignment_is_deterministic_and_order_free():
    hashes = [f"{i:064x}" for i in range(50)]
    first = assign_splits(hashes, FRACTIONS)
    assert first == assign_splits(list(reversed(hashes)), FRACTIONS)
    assert Counter(first.values()) == {"train": 40, "val": 5, "test": 5}


def test_identical_files_share_one_split():
    hashes = ["a" * 64, "a" * 64, "b" * 64, "c" * 64, "d" * 64]
    assignment = assign_splits(hashes, FRACTIONS)
    assert len(assignment) == 4  # one entry (one split) per distinct content
