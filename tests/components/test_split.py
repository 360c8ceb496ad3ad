import hashlib
import json
from collections import Counter

from visionpipe.components.ingest.config import SplitConfig
from visionpipe.components.ingest.keys import INDEX_FILE, OLD_INDEX_FILE, Index
from visionpipe.components.ingest.split import (
    Candidate,
    make_plan,
    split_sizes,
)
from visionpipe.pipeline.artifacts import ABSENT, ASSIGNED, CARVED, CONFLICTING, GIVEN, LEAKED, MISSING, TOO_SMALL

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# data.split's fractions alone (rule 4's test minimums off): what rules 1-3 are tested with.
PLAIN = SplitConfig(min_test_images=0, min_test_per_class=0, min_test_size=0)


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
    plan = make_plan(cands, PLAIN, {})
    assert placed(plan, cands) == placed(make_plan(list(reversed(cands)), PLAIN, {}), cands)
    by_class = Counter((c.label, plan.place(c)[0]) for c in cands)
    assert (by_class["cat", "train"], by_class["cat", "val"], by_class["cat", "test"]) == (40, 5, 5)
    assert (by_class["dog", "train"], by_class["dog", "val"], by_class["dog", "test"]) == (16, 2, 2)


def test_growing_the_data_never_moves_an_old_image_and_stays_stratified():
    old = candidates("cat", 100)
    first = make_plan(old, PLAIN, {})
    grown = old + candidates("cat", 30, start=100)
    second = make_plan(grown, PLAIN, first.index_of(old))
    assert all(second.place(c)[0] == first.place(c)[0] for c in old)
    assert Counter(second.place(c)[0] for c in grown) == {"train": 104, "val": 13, "test": 13}


def test_identical_files_share_one_split_and_are_reported():
    a = Candidate("cat/a.png", "f" * 64, "cat", "")
    b = Candidate("cat/copy_of_a.png", "f" * 64, "cat", "")
    plan = make_plan([a, b] + candidates("cat", 10), PLAIN, {})
    assert plan.place(a)[0] == plan.place(b)[0]
    assert plan.duplicates_in_split == [(plan.place(a)[0], ["cat/a.png", "cat/copy_of_a.png"])]


def test_copies_given_in_two_splits_are_kept_in_the_earliest_only():
    in_train = Candidate("train/cat/a.png", "e" * 64, "cat", "train")
    in_test = Candidate("test/cat/a.png", "e" * 64, "cat", "test")
    plan = make_plan([in_test, in_train], PLAIN, {})
    assert plan.place(in_train) == ("train", "", "")
    split, reason, kind = plan.place(in_test)
    assert split == "" and "train/cat/a.png" in reason and "leak" in reason and kind == LEAKED
    assert len(plan.leakage) == 1


def test_given_splits_win_over_the_index():
    image = Candidate("val/dog/x.png", "d" * 64, "dog", "val")
    other = Candidate("test/dog/y.png", "c" * 64, "dog", "test")
    plan = make_plan([image, other] + candidates("dog", 5, split="train"), PLAIN, {"d" * 64: "train"})
    assert plan.place(image) == ("val", "", "")


def test_every_copy_of_an_image_filed_under_two_classes_is_quarantined():
    as_dog = Candidate("dog/x.png", "d" * 64, "dog", "")
    as_cat = Candidate("cat/x.png", "d" * 64, "cat", "")
    plan = make_plan([as_dog, as_cat] + candidates("cat", 10) + candidates("dog", 10), PLAIN, {})
    for copy in (as_dog, as_cat):
        split, reason, kind = plan.place(copy)
        assert split == "" and kind == CONFLICTING
        assert "cat/x.png (cat)" in reason and "dog/x.png (dog)" in reason and "every copy" in reason
    assert len(plan.conflicting_labels) == 1 and "d" * 64 not in plan.index_of([as_dog, as_cat]).as_dict()
    assert Counter(plan.place(c)[0] for c in candidates("cat", 10)) == {"train": 8, "val": 1, "test": 1}


def test_a_missing_split_is_carved_out_of_train_stratified_and_stable():
    given_train = candidates("cat", 90, split="train") + candidates("dog", 45, split="train")
    given_val = candidates("cat", 10, start=90, split="val") + candidates("dog", 5, start=45, split="val")
    plan = make_plan(given_train + given_val, PLAIN, {})
    assert plan.origins == {"train": GIVEN, "val": GIVEN, "test": CARVED}
    by_class = Counter((c.label, plan.place(c).split) for c in given_train + given_val)
    # train/ is shared between train and test as 0.8 : 0.1
    assert by_class == {
        ("cat", "train"): 80,
        ("cat", "test"): 10,
        ("cat", "val"): 10,
        ("dog", "train"): 40,
        ("dog", "test"): 5,
        ("dog", "val"): 5,
    }
    assert all(plan.place(c).reason == "" for c in given_train + given_val)
    assert "carved out of the given train images (11% of them" in plan.describe()["test"]

    grown = given_train + candidates("cat", 18, start=200, split="train") + given_val
    again = make_plan(grown, PLAIN, plan.index_of(given_train + given_val))
    assert all(again.place(c).split == plan.place(c).split for c in given_train)
    assert Counter(again.place(c).split for c in grown if c.label == "cat" and c.split == "train") == {
        "train": 96,
        "test": 12,
    }


def test_a_split_with_fraction_zero_is_absent_and_others_are_not_carved():
    fractions = SplitConfig(train=0.9, val=0.0, test=0.1, min_test_images=0, min_test_per_class=0, min_test_size=0)
    assigned = make_plan(candidates("cat", 20), fractions, {})
    assert assigned.origins["val"] == ABSENT and "absent (data.split.val is 0)" == assigned.describe()["val"]
    assert Counter(assigned.place(c).split for c in candidates("cat", 20)) == {"train": 18, "test": 2}
    given = candidates("cat", 20, split="train") + candidates("cat", 5, start=20, split="test")
    pre_split = make_plan(given, fractions, {})
    assert pre_split.origins == {"train": GIVEN, "val": ABSENT, "test": GIVEN}
    assert Counter(pre_split.place(c).split for c in given) == {"train": 20, "test": 5}


def test_a_layout_without_train_reports_it_missing():
    plan = make_plan(candidates("cat", 5, split="val") + candidates("cat", 5, start=5, split="test"), PLAIN, {})
    assert plan.origins["train"] == MISSING


# Rule 4: a test split visionpipe makes is sized from the data.
DEFAULT = SplitConfig()


def counts_by_class(plan, cands) -> Counter:
    return Counter((c.label, plan.place(c).split) for c in cands)


def test_a_small_carved_test_split_is_lifted_to_a_useful_size():
    # The layout: train/ + val/ of two classes, about 109 train images each.
    train = candidates("cat", 109, split="train") + candidates("dog", 109, split="train")
    val = candidates("cat", 76, start=500, split="val") + candidates("dog", 77, start=500, split="val")
    plan = make_plan(train + val, DEFAULT, {})
    by_class = counts_by_class(plan, train + val)
    # 10% would give 12 a class (24 in all, an interval about 0.4 wide); 60 in all is wanted,
    # and a quarter of each class (27) is the most the minimums take.
    assert (by_class["cat", "test"], by_class["dog", "test"]) == (27, 27)
    assert (by_class["cat", "train"], by_class["cat", "val"]) == (82, 76)
    described = plan.describe()["test"]
    assert described.startswith("carved out of the given train images (25% of them, stratified; sized for")
    assert "sized for a useful accuracy interval: at least 10 per class and 60 in all" in described
    # Without the minimums the same data gets the plain tenth.
    plain = counts_by_class(make_plan(train + val, PLAIN, {}), train + val)
    assert (plain["cat", "test"], plain["dog", "test"]) == (12, 12)


def test_big_data_keeps_the_plain_fractions():
    cands = [c for label in "abcdefghij" for c in candidates(label, 600)]
    plan = make_plan(cands, DEFAULT, {})
    assert placed(plan, cands) == placed(make_plan(cands, PLAIN, {}), cands)
    assert Counter(plan.place(c).split for c in cands) == {"train": 4800, "val": 600, "test": 600}
    assert plan.test_sizing == "" and plan.describe()["test"] == "assigned by visionpipe (10% of each class)"


def test_many_classes_spread_the_minimum_and_each_class_gets_its_own():
    # 30 classes of 40: 10% is 4 a class; each gets 10 (its minimum), 300 in all.
    cands = [c for i in range(30) for c in candidates(f"c{i:02d}", 40)]
    plan = make_plan(cands, DEFAULT, {})
    by_class = counts_by_class(plan, cands)
    assert {by_class[f"c{i:02d}", "test"] for i in range(30)} == {10}
    assert {by_class[f"c{i:02d}", "val"] for i in range(30)} == {4}


def test_data_too_small_for_a_test_split_trains_on_it_and_says_so():
    train = candidates("cat", 30, split="train") + candidates("dog", 30, split="train")
    val = candidates("cat", 5, start=100, split="val") + candidates("dog", 5, start=100, split="val")
    plan = make_plan(train + val, DEFAULT, {})
    # A quarter of 30 is 7 a class: 14 < min_test_size 20.
    assert plan.origins["test"] == TOO_SMALL
    assert Counter(plan.place(c).split for c in train) == {"train": 60}
    described = plan.describe()["test"]
    assert "not made: the data is too small for a useful test split" in described
    assert "it would hold 14 images, fewer than data.split.min_test_size 20" in described
    # Without a val split to evaluate on, the small test split is made all the same.
    no_val = SplitConfig(val=0.0)
    assigned = make_plan(candidates("cat", 30) + candidates("dog", 30), no_val, {})
    assert assigned.origins["test"] == ASSIGNED
    assert Counter(assigned.place(c).split for c in candidates("cat", 30)) == {"train": 23, "test": 7}


def test_growing_data_never_moves_an_old_image_when_the_test_split_is_lifted_or_made_later():
    small = candidates("cat", 30, split="train") + candidates("dog", 30, split="train")
    val = candidates("cat", 5, start=900, split="val") + candidates("dog", 5, start=900, split="val")
    first = make_plan(small + val, DEFAULT, {})
    assert first.origins["test"] == TOO_SMALL
    grown = small + candidates("cat", 70, start=30, split="train") + candidates("dog", 70, start=30, split="train")
    second = make_plan(grown + val, DEFAULT, first.index_of(small + val))
    assert second.origins["test"] == CARVED
    assert all(second.place(c).split == "train" for c in small)  # they stay where they were
    by_class = counts_by_class(second, grown)
    assert (by_class["cat", "test"], by_class["dog", "test"]) == (25, 25)  # a quarter of 100, all new images
    more = candidates("cat", 100, start=100, split="train")
    third = make_plan(grown + more + val, DEFAULT, second.index_of(grown + val))
    assert all(third.place(c).split == second.place(c).split for c in grown)


def test_a_test_split_too_small_stays_unmade_when_only_one_class_grows():
    # Old images never move: a test split made later holds new images only, and 12 new green
    # images cannot give red and blue any.
    first_cands = [c for label in ("red", "green", "blue") for c in candidates(label, 20)]
    first = make_plan(first_cands, DEFAULT, {})
    assert first.origins["test"] == TOO_SMALL  # a quarter of 20 is 5 a class: 15 < 20
    grown = first_cands + candidates("green", 30, start=20)
    second = make_plan(grown, DEFAULT, first.index_of(first_cands))
    assert second.origins["test"] == TOO_SMALL and "it would hold 12 images" in second.test_sizing
    assert all(second.place(c).split == first.place(c).split for c in first_cands)


def test_digests_ending_in_zero_bytes_are_placed_as_the_plan_counted_them():
    # numpy hands an S32 digest back without its trailing zero bytes; the bounds by which any
    # image of a class is placed must still hold the whole digest.
    cands = [Candidate(f"cat/{i}.png", sha(f"cat{i}")[:-4] + "0000", "cat", "") for i in range(50)]
    plan = make_plan(cands, PLAIN, {})
    assert Counter(plan.place(c).split for c in cands) == {"train": 40, "val": 5, "test": 5}
    assert plan.index_of(cands).as_dict() == {c.sha256: plan.place(c).split for c in cands}


def test_the_split_index_survives_its_file_and_reads_an_old_json_index(tmp_path):
    cands = candidates("cat", 30) + candidates("dog", 12)
    index = make_plan(cands, PLAIN, {}).index_of(cands)
    with open(tmp_path / INDEX_FILE, "wb") as f:
        index.save(f)
    assert Index.load(tmp_path).as_dict() == index.as_dict() and len(index.as_dict()) == 42
    old = tmp_path / "old"
    old.mkdir()
    (old / OLD_INDEX_FILE).write_text(json.dumps(index.as_dict()))  # written by visionpipe before the npz
    grown = cands + candidates("cat", 10, start=30)
    again = make_plan(grown, PLAIN, Index.load(old))
    assert all(again.place(c).split == index.as_dict()[c.sha256] for c in cands)
    assert Index.load(tmp_path / "none").as_dict() == {}
