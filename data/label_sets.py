"""Multi-label images: how a set of labels travels through ingest, and how it is read back.

A single-label image carries one class name. A multi-label image carries a set of labels (0 or
more), which ingest handles as one canonical string: the labels sorted and joined by
``SEPARATOR``. One string per image keeps everything ingest does per label working unchanged:
duplicate and conflict detection (the same bytes under two different label sets is a
conflict), curation, the split plan and the reports. The records themselves hold every label
id and name as a list (``record_format``); the model-facing pipelines turn the ids into a
multi-hot vector.
"""

from __future__ import annotations

from collections.abc import Iterable

from visionpipe.pipeline.artifacts import MULTI_LABEL, SINGLE_LABEL

__all__ = ["MULTI_LABEL", "SINGLE_LABEL", "decode", "describe", "encode", "parse"]

SEPARATOR = "|"  # in the canonical string; a label may not contain it
NO_LABEL = "(no label)"  # how reports name an image whose label set is empty


def encode(labels: Iterable[str]) -> str:
    """The canonical string of a label set: unique labels, sorted, joined by SEPARATOR."""
    return SEPARATOR.join(sorted(set(labels)))


def decode(label_set: str) -> tuple[str, ...]:
    """The labels of a canonical string ("" is the empty set)."""
    return tuple(label_set.split(SEPARATOR)) if label_set else ()


def parse(value: object, delimiter: str) -> tuple[str, ...]:
    """The labels a manifest field holds: a JSON list of strings, or a string of labels joined by
    ``delimiter``. Raises ValueError saying what is wrong (a malformed list, an empty label, a
    label holding SEPARATOR); an empty list or string gives ()."""
    if isinstance(value, list):
        bad = [item for item in value if not isinstance(item, str)]
        if bad:
            raise ValueError(f"the label list holds {bad[0]!r}, which is not a string; give labels as strings")
        labels = [item.strip() for item in value]
    elif isinstance(value, str):
        labels = [part.strip() for part in value.split(delimiter)] if value.strip() else []
    else:
        raise ValueError(f"the label is {value!r}; give a list of labels or a string joined by {delimiter!r}")
    if any(not label for label in labels):
        raise ValueError(f"the label list {value!r} has an empty label (a doubled or trailing {delimiter!r}?)")
    holding = [label for label in labels if SEPARATOR in label]
    if holding:
        raise ValueError(f"the label {holding[0]!r} contains {SEPARATOR!r}, which multi-label data reserves")
    return tuple(labels)


def describe(label_set: str) -> str:
    """A label set for people: "cat, dog", or NO_LABEL."""
    return ", ".join(decode(label_set)) or NO_LABEL
