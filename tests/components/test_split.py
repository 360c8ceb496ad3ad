import hashlib
from collections import Counter

from visionpipe.components.ingest.split import Candidate, make_plan, split_sizes

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def candidates(label: str, n: int, start: int = 0, split: str = "") -> list[Candidate]:
    return [Candidate(f"{label}/{i}.png", sha(f"{label}{i}"), label, split) for i in range(start, start + n)]


def placed(plan, cands) -> dict[str, str]:
    return {c.source: plan.place(c)[0] for c in cands}


def test_sizes_follow_fractions_and_keep_every_split_non_empty():
    assert split_sizes(100, FRACTIONS) == {"val": 10, "test": 10, "train": 80}
    assert split_sizes(5, FRACTIONS) == {"val": 1, "test": 1, "train": 3}
    assert split_sizes(2, FRACTIONS)["train"] == 2
    assert split_sizes(50, {"train": 0.9, "val": 0.1, "test": 0.0})["test"] == 0


def test_plan_is_stratified_deterministic_and_order_free():
    cands = candidates("cat", 50) + candidates("dog", 20)
    plan = make_plan(cands, FRACTIONS, {})
    assert placed(plan, cands) == placed(make_plan(list(reversed(cands)), FRACTIONS, {}), cands)
    by_class = Counter((c.label, plan.place(c)[0]) for c in cands)
    assert (by_class["cat", "train"], by_class["cat", "val"], by_class["cat", "test"]) == (40, 5, 5)
    assert (by_class["dog", "train"], by_class["dog", "val"], by_class["dog", "test"]) == (16, 2, 2)


def test_growing_the_data_never_moves_an_old_image_and_stays_stratified():
    old = candidates("cat", 100)
    first = make_plan(old, FRACTIONS, {})
    grown = old + candidates("cat", 30, start=100)
    second = make_plan(grown, FRACTIONS, first.index)
    assert all(second.place(c)[0] == first.place(c)[0] for c in old)
    assert Counter(second.place(c)[0] for c in grown) == {"train": 104, "val": 13, "test": 13}


def test_identical_files_share_one_split_and_are_reported():
    a = Candidate("cat/a.png", "f" * 64, "cat", "")
    b = Candidate("cat/copy_of_a.png", "f" * 64, "cat", "")
    plan = make_plan([a, b] + candidates("cat", 10), FRACTIONS, {})
    assert plan.place(a)[0] == plan.place(b)[0]
    assert plan.duplicates_in_split == [(plan.place(a)[0], ["cat/a.png", "cat/copy_of_a.png"])]


def test_copies_given_in_two_splits_are_kept_in_the_earliest_only():
    in_train = Candidate("train/cat/a.png", "e" * 64, "cat", "train")
    in_test = Candidate("test/cat/a.png", "e" * 64, "cat", "test")
    plan = make_plan([in_test, in_train], FRACTIONS, {})
    assert plan.place(in_train) == ("train", "")
    split, reason = plan.place(in_test)
    assert split == "" and "train/cat/a.png" in reason and "leak" in reason
    assert len(plan.leakage) == 1


def test_given_splits_win_over_the_index_and_label_conflicts_are_reported():
    image = Candidate("val/dog/x.png", "d" * 64, "dog", "val")
    relabelled = Candidate("val/cat/x.png", "d" * 64, "cat", "val")
    plan = make_plan([image, relabelled], FRACTIONS, {"d" * 64: "train"})
    assert plan.place(image) == ("val", "")
    assert len(plan.conflicting_labels) == 1 and "cat and dog" in plan.conflicting_labels[0]
