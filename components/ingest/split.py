"""The split plan: which split every image goes to, and what its duplicates mean.

Rules, in order:
1. A split the user gave (train/val/test folders, a manifest column, a TFRecord feature,
   TFDS splits) is kept.
2. An image (by content hash) that a previous ingest of this run root placed stays in that
   split while that split is still open: adding images never moves an old one, so val/test
   stay unseen.
3. New images fill each class's shortfall against the configured fractions, in content-hash
   order (a fixed pseudo-random order), so splits stay stratified as data grows.
4. A test split that visionpipe makes is sized from the data (``data.split.min_test_*``): each
   class gives it at least ``min_test_per_class`` images and the split holds at least
   ``min_test_images``, taking no more than ``max_test_share`` of a class for these minimums,
   so that its accuracy interval can tell a model from a trivial one. When that still gives
   fewer than ``min_test_size`` images and there is a val split, the data is too small for a
   separate test split: none is made (its images train) and evaluate scores val, saying so.

A split whose fraction is 0 (``data.split.val: 0``) is deliberately absent: nothing is
assigned or carved into it. When the user gave every image a split but left out a split
that has a fraction (the common ``train/`` + ``val/`` layout with no ``test/``), that split is
*carved* out of the given train images: train is shared between itself and the carved
splits in the proportions of ``data.split``, by rules 2 and 3, so the carve is stratified and
stable as data grows.

Identical files share one hash and therefore one split, except where the user's own splits
put copies in two splits: that is leakage, and only the copy in the earliest split (train,
val, test) is kept; the others are quarantined with the reason. Copies within one split are
kept and reported. One content under two labels cannot be trusted in either class: every
copy is quarantined, and the conflict reported.

Multi-label data (``label_sets``) is stratified by each image's rarest label (an image with no
label is a stratum of its own): an image of a rare label then counts towards that label's
shares in every split, which is what a rare label needs, and the frequent labels, which ride
along on many images, end up close to their shares anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

from visionpipe.components.ingest.config import SplitConfig
from visionpipe.data import label_sets
from visionpipe.pipeline.artifacts import (
    ABSENT,
    ASSIGNED,
    CARVED,
    CONFLICTING,
    GIVEN,
    LEAKED,
    MISSING,
    TOO_SMALL,
    Examples,
)

SPLITS = Examples.SPLITS
CARVED_FROM = "train"  # the given split that missing splits are carved out of


class Candidate(NamedTuple):  # a tuple: millions of these cross Beam stages, pickled
    source: str
    sha256: str
    label: str
    split: str  # given by the user, or ""


class Placement(NamedTuple):
    split: str  # "" when the candidate is quarantined
    reason: str = ""  # why it is quarantined
    kind: str = ""  # the anomaly kind that reports it (LEAKED or CONFLICTING)


@dataclasses.dataclass
class Plan:
    classes: list[str]
    index: dict[str, str]  # content hash -> split: this ingest's and every earlier one's
    origins: dict[str, str]  # split -> GIVEN, ASSIGNED, CARVED (out of CARVED_FROM), ABSENT or MISSING
    shares: dict[str, float]  # split -> its share of the images visionpipe places (assigns or carves)
    leak_keepers: dict[str, str]  # content hash -> the source kept where copies leaked across splits
    conflicted: dict[str, str]  # content hash -> why all its copies are quarantined
    duplicates_in_split: list[tuple[str, list[str]]]  # (split, sources with identical content)
    leakage: list[str]
    conflicting_labels: list[str]
    test_sizing: str = ""  # how rule 4 sized the test split, when it changed anything
    task: str = label_sets.SINGLE_LABEL  # MULTI_LABEL: a candidate's label is a label set

    def label_ids(self, label: str) -> list[int]:
        """The class ids a candidate's label stands for: one, or (multi-label) one per label."""
        if self.task == label_sets.MULTI_LABEL:
            return [self.classes.index(name) for name in label_sets.decode(label)]
        return [self.classes.index(label)]

    def fits(self, given: str, split: str) -> bool:
        """Whether a candidate the user gave ``given`` (or "") may sit in ``split``."""
        return not given or given == split or (given == CARVED_FROM and self.origins.get(split) == CARVED)

    def place(self, candidate: Candidate) -> Placement:
        """Where a candidate goes, or why it is quarantined (a conflicting label or a leaked copy)."""
        if candidate.sha256 in self.conflicted:
            return Placement("", self.conflicted[candidate.sha256], CONFLICTING)
        split = self.index[candidate.sha256]
        if self.fits(candidate.split, split):
            return Placement(split)
        return Placement(
            "",
            f"same content as {self.leak_keepers[candidate.sha256]} in the {split} split; a copy "
            f"in the {candidate.split} split would leak between splits, so only the {split} copy is kept",
            LEAKED,
        )

    def describe(self) -> dict[str, str]:
        """A phrase per split on where its images came from, for the run summary."""
        words = {
            GIVEN: "as given",
            ASSIGNED: "assigned by visionpipe ({share:.0%} of each "
            + ("rarest label's images" if self.task == label_sets.MULTI_LABEL else "class")
            + ")",
            CARVED: "carved out of the given " + CARVED_FROM + " images ({share:.0%} of them, stratified)",
            ABSENT: "absent (data.split.{split} is 0)",
            MISSING: "missing from the given layout",
            TOO_SMALL: "not made: the data is too small for a useful test split, so evaluate scores val",
        }
        described = {s: words[self.origins[s]].format(share=self.shares.get(s, 0.0), split=s) for s in SPLITS}
        if self.test_sizing:  # inside the phrase's parentheses, if it has them
            said = described["test"]
            described["test"] = (
                f"{said[:-1]}; {self.test_sizing})" if said.endswith(")") else f"{said} ({self.test_sizing})"
            )
        return described


def split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of ``n`` items go to each split; val/test get at least one when n >= 3."""
    total = sum(fractions.values())
    sizes = {}
    for split in ("val", "test"):
        share = fractions[split] / total
        sizes[split] = max(1, round(n * share)) if share > 0 and n >= 3 else round(n * share)
    sizes["train"] = n - sizes["val"] - sizes["test"]
    return sizes


def class_sizes(n: int, pool: int, fractions: dict[str, float], rule: SplitConfig) -> dict[str, int]:
    """The split sizes of a class of ``n`` items in a pool of ``pool`` (every class's), rule 4
    included: the test split lifted to its minimums where the class can spare the images."""
    sizes = split_sizes(n, fractions)
    if fractions["test"] <= 0 or not pool:
        return sizes
    wanted = max(rule.min_test_per_class, math.ceil(rule.min_test_images * n / pool))
    test = max(sizes["test"], min(wanted, math.floor(rule.max_test_share * n)))
    return {**sizes, "test": test, "train": sizes["train"] - (test - sizes["test"])}


def origins(given: set[str], all_given: bool, fractions: dict[str, float]) -> dict[str, str]:
    """How each split is made, from the splits the user gave and the configured fractions."""
    result = {}
    for split in SPLITS:
        if split in given:
            result[split] = GIVEN
        elif fractions[split] <= 0:
            result[split] = ABSENT
        elif not all_given:
            result[split] = ASSIGNED
        elif split != CARVED_FROM and CARVED_FROM in given:
            result[split] = CARVED
        else:
            result[split] = MISSING
    return result


def make_plan(
    candidates: Iterable[Candidate],
    rule: SplitConfig,
    previous_index: dict[str, str],
    task: str = label_sets.SINGLE_LABEL,
) -> Plan:
    """Where every candidate goes (rules 1-4 above), from ``data.split`` and the previous index."""
    fractions = {"train": rule.train, "val": rule.val, "test": rule.test}
    by_hash: dict[str, list[Candidate]] = collections.defaultdict(list)
    for c in candidates:
        by_hash[c.sha256].append(c)
    groups = list(by_hash.values())
    given_splits = {c.split for group in groups for c in group if c.split}
    all_given = all(c.split for group in groups for c in group)
    labels = {c.label for group in groups for c in group}
    multi = task == label_sets.MULTI_LABEL
    plan = Plan(
        classes=sorted({name for label in labels for name in label_sets.decode(label)} if multi else labels),
        index=dict(previous_index),
        origins=origins(given_splits, all_given, fractions),
        shares={},
        leak_keepers={},
        conflicted=_conflicts(groups),
        duplicates_in_split=[],
        leakage=[],
        conflicting_labels=[],
        task=task,
    )
    stratum = _rarest_label(groups) if multi else str
    pool = _Pool.sort(by_hash, plan, previous_index, fractions, all_given, stratum)
    sizes = pool.sizes(rule)
    test_images = pool.test_images(sizes)
    val_made = plan.origins["val"] in (GIVEN, ASSIGNED, CARVED)
    if plan.origins["test"] in (ASSIGNED, CARVED) and val_made and test_images < rule.min_test_size:
        plan.origins["test"] = TOO_SMALL
        plan.test_sizing = (
            f"it would hold {test_images} images, fewer than data.split.min_test_size {rule.min_test_size}"
        )
        pool = _Pool.sort(by_hash, plan, previous_index, fractions, all_given, stratum)
        sizes = pool.sizes(rule)
    hash_split = dict(pool.given)
    for label, new in pool.new_by_class.items():
        hash_split.update(_fill(sorted(new), pool.placed_by_class[label], sizes[label]))
    plan.shares = pool.shares()
    if plan.origins["test"] in (ASSIGNED, CARVED) and any(
        s["test"] > split_sizes(sum(s.values()), pool.fractions)["test"] for s in sizes.values()
    ):
        plan.shares = pool.shares(hash_split)  # the shares as placed: the test split was lifted
        plan.test_sizing = (
            f"sized for a useful accuracy interval: at least {rule.min_test_per_class} per class and "
            f"{rule.min_test_images} in all where a class can spare them, up to {rule.max_test_share:.0%} of it"
        )

    plan.index.update(hash_split)
    for sha, group in sorted(by_hash.items()):
        if sha in hash_split:
            _report_copies(plan, group, hash_split[sha])
    plan.conflicting_labels = sorted(plan.conflicted.values())
    return plan


@dataclasses.dataclass
class _Pool:
    """The images visionpipe places (all of them, or when carving the given train images), by
    class, and the images whose split is already decided (given by the user)."""

    open_splits: set[str]  # the splits the pool fills
    fractions: dict[str, float]  # data.split's fractions of the open splits (0 for the others)
    given: dict[str, str]  # content hash -> its split as given, or as an earlier ingest placed it
    new_by_class: dict[str, list[str]]  # hashes to place
    placed_by_class: dict[str, collections.Counter]  # split -> images an earlier ingest placed there

    @classmethod
    def sort(
        cls,
        by_hash,
        plan: Plan,
        previous_index: dict[str, str],
        fractions: dict[str, float],
        all_given: bool,
        stratum: Callable[[str], str],
    ):
        carving = CARVED in plan.origins.values()
        if all_given:
            open_splits = {s for s, origin in plan.origins.items() if origin == CARVED} | (
                {CARVED_FROM} if carving else set()
            )
        else:
            open_splits = {s for s in SPLITS if fractions[s] > 0 and plan.origins[s] != TOO_SMALL}
        pool = cls(open_splits, {s: fractions[s] if s in open_splits else 0.0 for s in SPLITS}, {},
                   collections.defaultdict(list), collections.defaultdict(collections.Counter))  # fmt: skip
        for sha, group in by_hash.items():
            if sha in plan.conflicted:
                continue
            label = stratum(group[0].label)  # the class, or the label set's stratum
            given = sorted({c.split for c in group if c.split}, key=SPLITS.index)
            if given and not (carving and given == [CARVED_FROM]):
                pool.given[sha] = given[0]  # a given split, or the earliest of several (leakage)
            elif previous_index.get(sha) in open_splits:
                pool.given[sha] = previous_index[sha]
                pool.placed_by_class[label][previous_index[sha]] += 1
            else:
                pool.new_by_class[label].append(sha)
        return pool

    def sizes(self, rule: SplitConfig) -> dict[str, dict[str, int]]:
        """Class -> its target size in each split (rule 4 included)."""
        counts = {
            label: len(self.new_by_class.get(label, [])) + sum(self.placed_by_class.get(label, {}).values())
            for label in set(self.new_by_class) | set(self.placed_by_class)
        }
        total = sum(counts.values())
        return {label: class_sizes(n, total, self.fractions, rule) for label, n in counts.items()}

    def test_images(self, sizes: dict[str, dict[str, int]]) -> int:
        """How many images the test split gets: its target, where new images (or earlier test
        images) can fill it. Old images never move, so when data grows, a test split made for
        the first time holds new images only."""
        return sum(
            min(size["test"], self.placed_by_class[label]["test"] + len(self.new_by_class.get(label, [])))
            for label, size in sizes.items()
        )

    def shares(self, placed: dict[str, str] | None = None) -> dict[str, float]:
        """Each open split's share of the pool: as configured, or as ``placed``."""
        if placed is None:
            total = sum(self.fractions.values()) or 1.0
            return {s: f / total for s, f in self.fractions.items() if f}
        members = {sha for shas in self.new_by_class.values() for sha in shas}
        counts = collections.Counter(placed[sha] for sha in members)
        for placed_before in self.placed_by_class.values():
            counts.update(placed_before)
        total = sum(counts.values()) or 1
        return {s: counts[s] / total for s in SPLITS if self.fractions[s]}


def _rarest_label(groups: list[list[Candidate]]) -> Callable[[str], str]:
    """Multi-label strata: a label set -> its rarest label (counted once per content), ties broken
    by name; the empty set -> NO_LABEL."""
    counts = collections.Counter(name for group in groups for name in label_sets.decode(group[0].label))

    def stratum(label_set: str) -> str:
        names = label_sets.decode(label_set)
        return min(names, key=lambda name: (counts[name], name)) if names else label_sets.NO_LABEL

    return stratum


def _conflicts(groups: list[list[Candidate]]) -> dict[str, str]:
    """Content hash -> quarantine reason, for contents filed under more than one class."""
    conflicted = {}
    for group in groups:
        labels = sorted({c.label for c in group})
        if len(labels) > 1:
            where = ", ".join(f"{c.source} ({c.label})" for c in sorted(group, key=lambda c: c.source))
            conflicted[group[0].sha256] = (
                f"the same image is filed under {' and '.join(labels)}: {where}; it cannot be trusted in "
                "either class, so every copy is quarantined (keep it in one class folder)"
            )
    return conflicted


def _fill(new: list[str], placed: collections.Counter, target: dict[str, int]) -> dict[str, str]:
    """New hashes of one class go where the class is short of its target size."""
    order = []
    for split in ("test", "val"):
        order += [split] * max(0, target[split] - placed[split])
    order = order[: len(new)] + ["train"] * max(0, len(new) - len(order))
    return dict(zip(new, order, strict=True))


def _report_copies(plan: Plan, group: list[Candidate], split: str) -> None:
    """Reports copies within a split and copies leaking across splits."""
    kept = sorted(c.source for c in group if plan.fits(c.split, split))
    for c in group:
        if not plan.fits(c.split, split):
            plan.leak_keepers[c.sha256] = kept[0]
            plan.leakage.append(f"{c.source} ({c.split}) = {kept[0]} ({split})")
    if len(kept) > 1:
        plan.duplicates_in_split.append((split, kept))
