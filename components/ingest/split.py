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

The plan is made from compact arrays (``keys.py``), whatever the data's size, in two steps:
``plan_splits`` places every content hash and keeps what a worker needs to place any image on
its own (each class's hash bounds for new images, the previous index, the splits of copied
contents); ``Plan.with_copies`` adds the sources of the copied contents for the reports. So the
plan sent to every worker grows with the duplicates, not the images (the previous index goes as
a file, ``keys.StoredIndex``). ``plan_splits`` reads the keys a digest range at a time
(``keys.PartitionedKeys``) and keeps only counts per stratum and the shared contents, so making
the plan does not grow with the images either.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from visionpipe.components.ingest.config import SplitConfig
from visionpipe.components.ingest.keys import (
    DIGEST,
    SPLIT_NAMES,
    Index,
    Keys,
    PartitionedKeys,
    StoredIndex,
    digests,
    hex_of,
    split_code,
)
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
TRAIN, VAL, TEST = (split_code(s) for s in SPLITS)
# A group's given splits are a bit mask (bit code - 1); its split is the earliest one given.
EARLIEST_GIVEN = np.array([0, TRAIN, VAL, TRAIN, TEST, TRAIN, VAL, TRAIN], np.uint8)


class Candidate(NamedTuple):  # a tuple: millions of these cross Beam stages, pickled
    source: str
    sha256: str
    label: str
    split: str  # given by the user, or ""


class Placement(NamedTuple):
    split: str  # "" when the candidate is quarantined
    reason: str = ""  # why it is quarantined
    kind: str = ""  # the anomaly kind that reports it (LEAKED or CONFLICTING)


REPORTED = (
    "classes",
    "origins",
    "shares",
    "leak_keepers",
    "conflicted",
    "duplicates_in_split",
    "leakage",
    "conflicting_labels",
    "test_sizing",
    "task",
)  # the fields plan.json holds


@dataclasses.dataclass
class Plan:
    classes: list[str]
    origins: dict[str, str]  # split -> GIVEN, ASSIGNED, CARVED (out of CARVED_FROM), ABSENT or MISSING
    shares: dict[str, float]  # split -> its share of the images visionpipe places (assigns or carves)
    open_splits: tuple[str, ...]  # the splits visionpipe fills
    previous: Index | StoredIndex  # where earlier ingests put each content hash
    strata: dict[str, str]  # label (or label set) -> the stratum its new images are placed in
    bounds: dict[str, tuple[bytes, bytes]]  # stratum -> last digest of its new test images, of val ones
    copies: dict[str, str]  # content hash of several candidates -> its split (conflicted ones excluded)
    conflicted: dict[str, str]  # content hash -> why all its copies are quarantined
    duplicated: np.ndarray  # sorted digests of the contents several candidates share
    leak_keepers: dict[str, str] = dataclasses.field(default_factory=dict)  # hash -> the source kept
    duplicates_in_split: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    leakage: list[str] = dataclasses.field(default_factory=list)
    conflicting_labels: list[str] = dataclasses.field(default_factory=list)
    test_sizing: str = ""  # how rule 4 sized the test split, when it changed anything
    task: str = label_sets.SINGLE_LABEL  # MULTI_LABEL: a candidate's label is a label set

    @property
    def carving(self) -> bool:
        return CARVED in self.origins.values()

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
        return self.place_all([candidate])[0]

    def place_all(self, candidates: Sequence[Candidate], keys: np.ndarray | None = None) -> list[Placement]:
        """Each candidate's placement; ``keys``: their digests, when the caller has them already."""
        keys = digests(c.sha256 for c in candidates) if keys is None else keys
        previous = self.previous.lookup(keys)
        return [self._placement(c, SPLIT_NAMES[p]) for c, p in zip(candidates, previous.tolist(), strict=True)]

    def _placement(self, candidate: Candidate, previous: str) -> Placement:
        sha = candidate.sha256
        if sha in self.conflicted:
            return Placement("", self.conflicted[sha], CONFLICTING)
        split = self.copies.get(sha) or self._split(candidate, previous)
        if self.fits(candidate.split, split):
            return Placement(split)
        return Placement(
            "",
            f"same content as {self.leak_keepers[sha]} in the {split} split; a copy "
            f"in the {candidate.split} split would leak between splits, so only the {split} copy is kept",
            LEAKED,
        )

    def _split(self, candidate: Candidate, previous: str) -> str:
        """The split of a content only this candidate has: given, placed before, or new."""
        if candidate.split and not (self.carving and candidate.split == CARVED_FROM):
            return candidate.split
        if previous in self.open_splits:
            return previous
        test_upto, val_upto = self.bounds[self.strata[candidate.label]]
        digest = bytes.fromhex(candidate.sha256)
        return "test" if digest <= test_upto else "val" if digest <= val_upto else "train"

    def index_of(self, candidates: Sequence[Candidate]) -> Index:
        """The previous index with where ``candidates`` went (what the next ingest reads)."""
        placed = [(c.sha256, p.split) for c, p in zip(candidates, self.place_all(candidates), strict=True) if p.split]
        return Index.merged(
            self.previous, digests(s for s, _ in placed), np.array([split_code(x) for _, x in placed], np.uint8)
        )

    def report(self) -> dict:
        """What plan.json holds."""
        return {name: getattr(self, name) for name in REPORTED}

    def describe(self) -> dict[str, str]:
        return describe_splits(self.report())

    def with_copies(self, copies: Iterable[Candidate]) -> Plan:
        """The plan with its reports: ``copies`` are the candidates of every content hash that
        several candidates share (``duplicated``), in any order."""
        by_hash: dict[str, list[Candidate]] = collections.defaultdict(list)
        for c in map(Candidate._make, copies):  # plain tuples from the workers
            by_hash[c.sha256].append(c)
        groups = list(by_hash.values())
        conflicted = {**self.conflicted, **_conflicts(groups)}
        plan = dataclasses.replace(self, conflicted=conflicted, leak_keepers={}, duplicates_in_split=[], leakage=[])
        for sha, group in sorted(by_hash.items()):
            if sha in plan.copies:
                _report_copies(plan, group, plan.copies[sha])
        plan.conflicting_labels = sorted(plan.conflicted.values())
        return plan


def describe_splits(report: dict) -> dict[str, str]:
    """A phrase per split on where its images came from, for the run summary (from ``report``)."""
    words = {
        GIVEN: "as given",
        ASSIGNED: "assigned by visionpipe ({share:.0%} of each "
        + ("rarest label's images" if report["task"] == label_sets.MULTI_LABEL else "class")
        + ")",
        CARVED: "carved out of the given " + CARVED_FROM + " images ({share:.0%} of them, stratified)",
        ABSENT: "absent (data.split.{split} is 0)",
        MISSING: "missing from the given layout",
        TOO_SMALL: "not made: the data is too small for a useful test split, so evaluate scores val",
    }
    origins, shares = report["origins"], report["shares"]
    described = {s: words[origins[s]].format(share=shares.get(s, 0.0), split=s) for s in SPLITS}
    if report["test_sizing"]:  # inside the phrase's parentheses, if it has them
        said = described["test"]
        sizing = report["test_sizing"]
        described["test"] = f"{said[:-1]}; {sizing})" if said.endswith(")") else f"{said} ({sizing})"
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
    candidates: Sequence[Candidate],
    rule: SplitConfig,
    previous_index: dict[str, str] | Index,
    task: str = label_sets.SINGLE_LABEL,
) -> Plan:
    """The plan of candidates held in memory (``plan_splits`` then ``with_copies``)."""
    previous = previous_index if isinstance(previous_index, Index) else Index.of(previous_index)
    plan = plan_splits(Keys.of([(c.sha256, c.label, c.split) for c in candidates]), rule, previous, task)
    shared = set(plan.copies) | set(plan.conflicted)
    return plan.with_copies(c for c in candidates if c.sha256 in shared)


class _Groups(NamedTuple):
    """The candidates grouped by content digest (sorted)."""

    digests: np.ndarray
    label: np.ndarray  # the lowest label code of the group
    conflicted: np.ndarray  # bool: its candidates carry more than one label
    given: np.ndarray  # bit mask of the splits its candidates were given
    size: np.ndarray  # candidates in the group

    @classmethod
    def of(cls, keys: Keys) -> _Groups:
        unique, inverse, size = np.unique(keys.digests, return_inverse=True, return_counts=True)
        low = np.full(len(unique), np.iinfo(np.int32).max, np.int32)
        high = np.full(len(unique), -1, np.int32)
        np.minimum.at(low, inverse, keys.label_codes)
        np.maximum.at(high, inverse, keys.label_codes)
        bits = np.where(keys.given > 0, np.left_shift(1, np.maximum(keys.given, 1) - 1), 0).astype(np.uint8)
        given = np.zeros(len(unique), np.uint8)
        np.bitwise_or.at(given, inverse, bits)
        return cls(unique, low, low != high, given, size)


def plan_splits(
    keys: Keys | PartitionedKeys, rule: SplitConfig, previous: Index | StoredIndex, task: str = label_sets.SINGLE_LABEL
) -> Plan:
    """Where every content hash goes (rules 1-4 above), from ``data.split`` and the previous
    index. The reports on copies need their sources: ``Plan.with_copies`` adds them.

    ``keys`` are read a part at a time (``keys.parts()``), three times: what was given and
    shared; how many contents of each stratum are given, placed before or new; and, in digest
    order, where the new ones go. Only counts and the shared contents are kept between parts."""
    fractions = {"train": rule.train, "val": rule.val, "test": rule.test}
    multi = task == label_sets.MULTI_LABEL
    seen = _Seen.of(keys)
    strata = _strata(keys.labels, seen.per_label, multi)
    plan = Plan(
        classes=sorted({n for label in keys.labels for n in label_sets.decode(label)} if multi else keys.labels),
        origins=origins(seen.given_splits, seen.all_given, fractions),
        shares={},
        open_splits=(),
        previous=previous,
        strata=dict(zip(keys.labels, strata, strict=True)),
        bounds={},
        copies={},
        conflicted={hex_of(d): "" for d in seen.conflicted.tolist()},  # reasons: with_copies
        duplicated=seen.duplicated,
        task=task,
    )
    names = sorted(set(strata))
    positions = [names.index(s) for s in strata]
    pool = _Pool.of(_Tally(keys, plan, previous, positions), plan, fractions, names, seen)
    sizes = pool.sizes(rule)
    val_made = plan.origins["val"] in (GIVEN, ASSIGNED, CARVED)
    if plan.origins["test"] in (ASSIGNED, CARVED) and val_made and pool.test_images(sizes) < rule.min_test_size:
        plan.test_sizing = (
            f"it would hold {pool.test_images(sizes)} images, fewer than data.split.min_test_size {rule.min_test_size}"
        )
        plan.origins["test"] = TOO_SMALL  # which may end the carving, and what counts as given
        pool = _Pool.of(_Tally(keys, plan, previous, positions), plan, fractions, names, seen)
        sizes = pool.sizes(rule)
    plan.bounds, plan.copies = pool.fill(sizes)
    plan.open_splits = tuple(sorted(pool.open_splits))
    plan.shares = pool.shares(placed=False)
    if plan.origins["test"] in (ASSIGNED, CARVED) and any(
        s["test"] > split_sizes(sum(s.values()), pool.fractions)["test"] for s in sizes.values()
    ):
        plan.shares = pool.shares(placed=True)  # the shares as placed: the test split was lifted
        plan.test_sizing = (
            f"sized for a useful accuracy interval: at least {rule.min_test_per_class} per class and "
            f"{rule.min_test_images} in all where a class can spare them, up to {rule.max_test_share:.0%} of it"
        )
    return plan


@dataclasses.dataclass
class _Seen:
    """The first pass over the keys: what was given, and the contents several candidates share."""

    given_splits: set[str]
    all_given: bool  # every candidate came with a split
    per_label: np.ndarray  # contents whose (lowest) label is each label
    conflicted: np.ndarray  # digests of the contents filed under more than one label
    duplicated: np.ndarray  # sorted digests of the contents several candidates share

    @classmethod
    def of(cls, keys: Keys | PartitionedKeys) -> _Seen:
        given_codes: set[int] = set()
        all_given = True
        per_label = np.zeros(len(keys.labels), np.int64)
        conflicted, duplicated = [np.array([], DIGEST)], [np.array([], DIGEST)]
        for part in keys.parts():
            groups = _Groups.of(part)
            given_codes.update(np.unique(part.given).tolist())
            all_given = all_given and bool((part.given > 0).all())
            per_label += np.bincount(groups.label, minlength=len(keys.labels))
            conflicted.append(groups.digests[groups.conflicted])
            duplicated.append(groups.digests[groups.size > 1])
        given = {SPLIT_NAMES[c] for c in given_codes if c}
        return cls(given, all_given, per_label, np.concatenate(conflicted), np.concatenate(duplicated))


def _strata(labels: tuple[str, ...], per_label: np.ndarray, multi: bool) -> list[str]:
    """The stratum of each label: the label itself, or for multi-label data the label set's
    rarest label (counted once per content), ties broken by name; the empty set: NO_LABEL."""
    if not multi:
        return list(labels)
    counts: collections.Counter[str] = collections.Counter()
    for label, n in zip(labels, per_label.tolist(), strict=True):
        for name in label_sets.decode(label):
            counts[name] += n
    strata = []
    for label in labels:
        names = label_sets.decode(label)
        strata.append(min(names, key=lambda name: (counts[name], name)) if names else label_sets.NO_LABEL)
    return strata


class _Part(NamedTuple):
    """One part of the keys, grouped by content, with what decides each content's split."""

    groups: _Groups
    stratum: np.ndarray  # per group: its stratum's position in the plan's strata
    given: np.ndarray  # per group: its split is given (a carved-from train split does not count)
    before: np.ndarray  # per group: the split code an earlier ingest placed it in (0: none)


class _Tally:
    """The second pass: contents counted by (stratum, earlier split code, given, conflicted),
    from which the pool's counts follow for any set of open splits."""

    def __init__(self, keys: Keys | PartitionedKeys, plan: Plan, previous: Index | StoredIndex, strata: list[int]):
        self._keys, self._previous = keys, previous
        self._carving = plan.carving
        self._stratum_of_label = np.array(strata or [0], np.int64)
        self.counts = np.zeros((max(strata, default=-1) + 1, len(SPLIT_NAMES), 2, 2), np.int64)
        for part in self.parts():
            index = (part.stratum, part.before, part.given.astype(int), part.groups.conflicted.astype(int))
            np.add.at(self.counts, index, 1)

    def parts(self) -> Iterator[_Part]:
        for keys in self._keys.parts():
            groups = _Groups.of(keys)
            given = (groups.given > 0) & ~(self._carving & (groups.given == 1 << (TRAIN - 1)))
            before = self._previous.lookup(groups.digests)
            yield _Part(groups, self._stratum_of_label[groups.label], given, before)


@dataclasses.dataclass
class _Pool:
    """Every content by how its split is decided, counted per stratum: given by the user (or
    placed by an earlier ingest, in an open split) or placed now, in its stratum, by rules 3
    and 4."""

    tally: _Tally
    open_splits: set[str]  # the splits the pool fills
    fractions: dict[str, float]  # data.split's fractions of the open splits (0 for the others)
    names: list[str]  # the strata
    new: np.ndarray  # per stratum: contents placed now
    placed: np.ndarray  # (stratum, split code) -> contents an earlier ingest placed there
    is_open: np.ndarray  # per split code: whether the pool fills that split
    cuts: np.ndarray | None = None  # per stratum: new contents that go to test, to test or val (``fill``)

    @classmethod
    def of(cls, tally: _Tally, plan: Plan, fractions: dict, names: list[str], seen: _Seen) -> _Pool:
        if seen.all_given:
            carved = {s for s, origin in plan.origins.items() if origin == CARVED}
            open_splits = carved | ({CARVED_FROM} if plan.carving else set())
        else:
            open_splits = {s for s in SPLITS if fractions[s] > 0 and plan.origins[s] != TOO_SMALL}
        is_open = np.array([split in open_splits for split in SPLIT_NAMES])
        free = tally.counts[:, :, 0, 0]  # (stratum, earlier split): neither given nor conflicted
        fractions = {s: fractions[s] if s in open_splits else 0.0 for s in SPLITS}
        return cls(tally, open_splits, fractions, names, free[:, ~is_open].sum(axis=1), free * is_open, is_open)

    def sizes(self, rule: SplitConfig) -> dict[str, dict[str, int]]:
        """Stratum -> its target size in each split (rule 4 included)."""
        counts = self.new + self.placed.sum(axis=1)
        total = int(counts.sum())
        return {
            self.names[i]: class_sizes(int(n), total, self.fractions, rule) for i, n in enumerate(counts.tolist()) if n
        }

    def test_images(self, sizes: dict[str, dict[str, int]]) -> int:
        """How many images the test split gets: its target, where new images (or earlier test
        images) can fill it. Old images never move, so when data grows, a test split made for
        the first time holds new images only."""
        return sum(
            min(size["test"], int(self.placed[self.names.index(name), TEST] + self.new[self.names.index(name)]))
            for name, size in sizes.items()
        )

    def fill(self, sizes: dict[str, dict[str, int]]) -> tuple[dict[str, tuple[bytes, bytes]], dict[str, str]]:
        """New contents of a stratum, in digest order, go where it is short of its target: test,
        then val, then train. Returns each stratum's bounds: the last digest (padded) of its new
        test contents and of its new val contents (of the test ones where it has no val ones),
        b"" where it has none, by which a worker places any new image of it on its own; and the
        split of every content several candidates share (conflicted ones aside)."""
        targets = np.zeros((len(self.names), len(SPLIT_NAMES)), np.int64)
        for name, size in sizes.items():
            targets[self.names.index(name), [TEST, VAL]] = size["test"], size["val"]
        short = np.maximum(0, targets - self.placed)
        test = np.minimum(short[:, TEST], self.new)
        self.cuts = np.stack([test, np.minimum(test + short[:, VAL], self.new)], axis=1)
        last = np.full((len(self.names), 2), b"", DIGEST)  # per stratum: the digest at each cut
        ranked = np.zeros(len(self.names), np.int64)  # per stratum: its new contents in earlier parts
        copies: dict[str, str] = {}
        for part in self.tally.parts():
            split = self._place(part, ranked, last)
            shared = (part.groups.size > 1) & ~part.groups.conflicted
            hexes = map(hex_of, part.groups.digests[shared].tolist())
            copies.update(zip(hexes, [SPLIT_NAMES[c] for c in split[shared].tolist()], strict=True))

        def padded(digest: bytes, upto: int) -> bytes:
            return bytes.fromhex(hex_of(digest)) if upto else b""

        bounds = {
            name: (padded(test, upto[0]), padded(val, upto[1]))
            for name, (test, val), upto in zip(self.names, last.tolist(), self.cuts.tolist(), strict=True)
        }
        return bounds, copies

    def _place(self, part: _Part, ranked: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The split code of each content of ``part`` (0 if conflicted); its new contents are
        ranked on from ``ranked`` (updated), and the digests at the cuts go into ``last``."""
        groups, stratum = part.groups, part.stratum
        from_before = ~part.given & self.is_open[part.before]
        split = np.where(part.given, EARLIEST_GIVEN[groups.given], np.where(from_before, part.before, 0))
        order = np.flatnonzero(~groups.conflicted & ~part.given & ~from_before)
        order = order[np.argsort(stratum[order], kind="stable")]  # by stratum, digest order within
        strata = stratum[order]
        rank = ranked[strata] + np.arange(len(order)) - np.searchsorted(strata, strata)
        ranked += np.bincount(strata, minlength=len(self.names))
        assert self.cuts is not None, "fill sets the cuts"
        cuts = self.cuts[strata]
        split[order] = np.where(rank < cuts[:, 0], TEST, np.where(rank < cuts[:, 1], VAL, TRAIN))
        for bound in (0, 1):
            at = rank == cuts[:, bound] - 1
            last[strata[at], bound] = groups.digests[order[at]]
        split[groups.conflicted] = 0
        return split

    def shares(self, placed: bool) -> dict[str, float]:
        """Each open split's share of the pool: as configured, or as placed."""
        if not placed:
            total = sum(self.fractions.values()) or 1.0
            return {s: f / total for s, f in self.fractions.items() if f}
        assert self.cuts is not None, "fill first"
        now = {TEST: self.cuts[:, 0].sum(), VAL: (self.cuts[:, 1] - self.cuts[:, 0]).sum()}
        now[TRAIN] = self.new.sum() - now[TEST] - now[VAL]
        counts = {code: int(now[code] + self.placed[:, code].sum()) for code in (TRAIN, VAL, TEST)}
        total = sum(counts.values()) or 1
        return {s: counts[split_code(s)] / total for s in SPLITS if self.fractions[s]}


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


def _report_copies(plan: Plan, group: list[Candidate], split: str) -> None:
    """Reports copies within a split and copies leaking across splits."""
    kept = sorted(c.source for c in group if plan.fits(c.split, split))
    for c in group:
        if not plan.fits(c.split, split):
            plan.leak_keepers[c.sha256] = kept[0]
            plan.leakage.append(f"{c.source} ({c.split}) = {kept[0]} ({split})")
    if len(kept) > 1:
        plan.duplicates_in_split.append((split, kept))
