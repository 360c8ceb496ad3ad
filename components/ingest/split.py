"""Deterministic, stratified train/val/test assignment.

Within each class, images are ordered by content hash (a fixed pseudo-random order) and cut
by the configured fractions, so every split gets its share of every class. Identical files
share one hash and so always land in the same split: no leakage between splits.
"""
from __future__ import annotations

from typing import Iterable

SPLITS = ("train", "val", "test")


def split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of ``n`` items go to each split; val/test get at least one when n >= 3."""
    total = sum(fractions.values())
    sizes = {}
    for split in ("val", "test"):
        share = fractions[split] / total
        sizes[split] = max(1, round(n * share)) if share > 0 and n >= 3 else round(n * share)
    sizes["train"] = n - sizes["val"] - sizes["test"]
    return sizes


def assign_splits(hashes: Iterable[str], fractions: dict[str, float]) -> dict[str, str]:
    """Maps each distinct content hash of one class to a split."""
    unique = sorted(set(hashes))
    sizes = split_sizes(len(unique), fractions)
    order = [split for split in ("test", "val", "train") for _ in range(sizes[split])]
    return dict(zip(unique, order))
