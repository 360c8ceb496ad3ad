"""The split plan: which split every image goes to, and what its duplicates mean.

Rules, in order:
1. A split the user gave (train/val/test folders, a manifest column, a TFRecord feature,
   TFDS splits) is kept.
2. An image (by content hash) that a previous ingest of this run root placed stays in that
   split: adding images never moves an old one, so val/test stay unseen.
3. New images fill each class's shortfall against the configured fractions, in content-hash
   order (a fixed pseudo-random order), so splits stay stratified as data grows.

Identical files share one hash and therefore one split, except where the user's own splits
put copies in two splits: that is leakage, and only the copy in the earliest split (train,
val, test) is kept; the others are quarantined with the reason. Copies within one split are
kept and reported; one content under two labels is reported as conflicting labels.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import NamedTuple

SPLITS = ("train", "val", "test")


class Candidate(NamedTuple):  # a tuple: millions of these cross Beam stages, pickled
    source: str
    sha256: str
    label: str
    split: str  # given by the user, or ""


@dataclasses.dataclass
class Plan:
    classes: list[str]
    index: dict[str, str]  # content hash -> split: this ingest's and every earlier one's
    leak_keepers: dict[str, str]  # content hash -> the source kept where copies leaked across splits
    duplicates_in_split: list[tuple[str, list[str]]]  # (split, sources with identical content)
    leakage: list[str]
    conflicting_labels: list[str]

    def place(self, candidate: Candidate) -> tuple[str, str]:
        """(split, "") for a kept candidate, or ("", quarantine reason) for a leaked copy."""
        split = self.index[candidate.sha256]
        if not candidate.split or candidate.split == split:
            return split, ""
        return "", (
            f"same content as {self.leak_keepers[candidate.sha256]} in the {split} split; a copy "
            f"in the {candidate.split} split would leak between splits, so only the {split} copy is kept"
        )


def split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of ``n`` items go to each split; val/test get at least one when n >= 3."""
    total = sum(fractions.values())
    sizes = {}
    for split in ("val", "test"):
        share = fractions[split] / total
        sizes[split] = max(1, round(n * share)) if share > 0 and n >= 3 else round(n * share)
    sizes["train"] = n - sizes["val"] - sizes["test"]
    return sizes


def make_plan(candidates: Iterable[Candidate], fractions: dict[str, float], previous_index: dict[str, str]) -> Plan:
    by_hash: dict[str, list[Candidate]] = collections.defaultdict(list)
    for c in candidates:
        by_hash[c.sha256].append(c)
    plan = Plan(
        classes=sorted({c.label for group in by_hash.values() for c in group}),
        index=dict(previous_index),
        leak_keepers={},
        duplicates_in_split=[],
        leakage=[],
        conflicting_labels=[],
    )
    hash_split: dict[str, str] = {}
    new_by_class: dict[str, list[str]] = collections.defaultdict(list)
    placed_by_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for sha, group in by_hash.items():
        label = min(c.label for c in group)  # the class a multi-labelled content is stratified in
        given = sorted({c.split for c in group if c.split}, key=SPLITS.index)
        if given:
            hash_split[sha] = given[0]
        elif sha in previous_index:
            hash_split[sha] = previous_index[sha]
        else:
            new_by_class[label].append(sha)
            continue
        placed_by_class[label][hash_split[sha]] += 1
    for label, new in new_by_class.items():
        hash_split.update(_fill(sorted(new), placed_by_class[label], fractions))

    plan.index.update(hash_split)
    for sha, group in sorted(by_hash.items()):
        _report_copies(plan, group, hash_split[sha])
    return plan


def _fill(new: list[str], placed: collections.Counter, fractions: dict[str, float]) -> dict[str, str]:
    """New hashes of one class go where the class is short of its target size."""
    target = split_sizes(len(new) + sum(placed.values()), fractions)
    order = []
    for split in ("test", "val"):
        order += [split] * max(0, target[split] - placed[split])
    order = order[: len(new)] + ["train"] * max(0, len(new) - len(order))
    return dict(zip(new, order, strict=True))


def _report_copies(plan: Plan, group: list[Candidate], split: str) -> None:
    """Reports copies within a split, copies leaking across splits, and label conflicts."""
    kept = sorted(c.source for c in group if not c.split or c.split == split)
    for c in group:
        if c.split and c.split != split:
            plan.leak_keepers[c.sha256] = kept[0]
            plan.leakage.append(f"{c.source} ({c.split}) = {kept[0]} ({split})")
    if len(kept) > 1:
        plan.duplicates_in_split.append((split, kept))
    labels = sorted({c.label for c in group})
    if len(labels) > 1:
        plan.conflicting_labels.append(
            f"{', '.join(sorted(c.source for c in group))} are the same image labelled {' and '.join(labels)}"
        )
