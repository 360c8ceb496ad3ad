"""Curation: the images a user leaves out of the data (``data.exclude``) and the labels they
correct (``data.relabel``), read from their files, applied by the next ingest's workers and
recorded in the Examples' ``curation.jsonl`` with the reason of each.

Nothing in the user's folder is deleted or changed: an excluded image is not read, a relabelled
one is ingested under its new label. Every line of a curation file must name an image of the
data; one that names none fails ingest with its file and line (a path that moved would
otherwise let a mislabelled photo back in without a word).

``data.exclude`` is either a text file with one path a line (lines starting with ``#`` are comments), or a CSV
with a ``path`` column and optionally ``action`` (drop, relabel or keep; empty = drop) and
``new_label`` (else ``suggested_label``) columns: the data_quality stage's ``findings.csv`` is
one, with its action prefilled, so a reviewed findings file is used as it is. ``data.relabel`` is a
CSV with ``path`` and ``label`` columns.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

from visionpipe.components.ingest.config import MANIFEST_SUFFIXES, DataConfig
from visionpipe.data import label_sets, record_format
from visionpipe.pipeline.artifacts import DROP, KEEP, RELABEL
from visionpipe.pipeline.errors import DataError

ACTIONS = (DROP, RELABEL, KEEP)


LISTED = "listed"  # the kind of a row that is not a data_quality finding


class Decision(NamedTuple):
    action: str  # DROP or RELABEL
    label: str  # the new label (RELABEL), else ""
    kind: str  # the data_quality finding's kind, or LISTED
    reason: str  # why, in words: the finding's kind and score, or the file that lists the image
    origin: str  # "<file>:<line>", for errors and lineage


@dataclasses.dataclass(frozen=True)
class Curation:
    """Source key (``source_key``) -> what to do with that image."""

    decisions: dict[str, Decision] = dataclasses.field(default_factory=dict)

    def decide(self, source: str) -> Decision | None:
        """The decision on the image ingest lists as ``source``, or None."""
        return self.decisions.get(source_key(source)) if self.decisions else None

    def __bool__(self) -> bool:
        return bool(self.decisions)

    def with_label_sets(self, delimiter: str) -> Curation:
        """For multi-label data: each new label read as a label set ("cat|dog", joined by
        ``delimiter``) and spelled as ingest spells label sets."""
        decisions = {}
        for key, d in self.decisions.items():
            if d.action == RELABEL:
                try:
                    d = d._replace(label=label_sets.encode(label_sets.parse(d.label, delimiter)))
                except ValueError as err:
                    raise DataError(f"{d.origin}: {err}") from None
            decisions[key] = d
        return Curation(decisions)


def source_key(path: str, root: str = "") -> str:
    """The form in which a curation row and an ingested item are compared (record_format.located)."""
    return record_format.located(path, root)


def data_root(data: DataConfig) -> str:
    """Where relative paths in a curation file start: the data's folder, or its manifest's."""
    if data.source == "manifest" or data.path.endswith(MANIFEST_SUFFIXES):
        return os.path.dirname(data.path)
    return data.path if data.source == "folder" else ""


def load(data: DataConfig) -> Curation:
    """The decisions of ``data.exclude`` and ``data.relabel`` (an empty Curation when neither is set)."""
    rows: list[tuple[str, Decision]] = []
    if data.exclude:
        rows += _exclude_rows(data.exclude)
    if data.relabel:
        rows += _relabel_rows(data.relabel)
    root = data_root(data)
    decisions: dict[str, Decision] = {}
    for path, decision in rows:
        key = source_key(path, root)
        earlier = decisions.get(key)
        if earlier is not None and (earlier.action, earlier.label) != (decision.action, decision.label):
            raise DataError(
                f"{decision.origin} says {_said(decision)} {path}, but {earlier.origin} says {_said(earlier)} it; "
                "keep one of the two lines"
            )
        decisions.setdefault(key, decision)
    return Curation(decisions)


def _said(decision: Decision) -> str:
    return f"relabel to {decision.label!r}" if decision.action == RELABEL else "drop"


def _read(path: str, setting: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {setting}={path!r}: {err}; give the path of a text or CSV file") from None


def _exclude_rows(path: str) -> list[tuple[str, Decision]]:
    lines = _read(path, "data.exclude")
    if not path.lower().endswith(".csv"):
        listed = ((n, line.strip()) for n, line in enumerate(lines, 1))  # (a record's name holds a #)
        origin = f"listed in {path}"
        return [
            (p, Decision(DROP, "", LISTED, origin, f"{path}:{n}")) for n, p in listed if p and not p.startswith("#")
        ]
    rows = []
    for n, row in _csv_rows(lines, path, "data.exclude", ("path",)):
        action = (row.get("action") or DROP).strip().lower()
        if action not in ACTIONS:
            raise DataError(f"{path}:{n}: action {action!r} is not one of {', '.join(ACTIONS)}")
        if action == KEEP:  # reviewed and kept: nothing to do
            continue
        label = (row.get("new_label") or row.get("suggested_label") or "").strip() if action == RELABEL else ""
        if action == RELABEL and not label:
            raise DataError(f"{path}:{n}: action relabel needs the new label in a new_label column")
        kind = (row.get("kind") or "").strip() or LISTED
        rows.append((row["path"], Decision(action, label, kind, _reason(row, path), f"{path}:{n}")))
    return rows


def _relabel_rows(path: str) -> list[tuple[str, Decision]]:
    rows = []
    for n, row in _csv_rows(_read(path, "data.relabel"), path, "data.relabel", ("path", "label")):
        label = row["label"].strip()
        if not label:
            raise DataError(f"{path}:{n}: the label is empty; give the class the image belongs to")
        rows.append((row["path"], Decision(RELABEL, label, LISTED, f"relabelled in {path}", f"{path}:{n}")))
    return rows


def _csv_rows(lines: list[str], path: str, setting: str, needed: tuple[str, ...]):
    """(line number, row) of each row of a CSV file that has the ``needed`` columns and a path."""
    reader = csv.DictReader(lines)
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"{setting}={path!r} has no {', '.join(missing)} column (its header: "
            f"{', '.join(reader.fieldnames or [])}); a CSV {setting} needs {', '.join(needed)} columns"
        )
    for row in reader:
        if not (row.get("path") or "").strip():
            raise DataError(f"{path}:{reader.line_num}: the path is empty; every row names an image")
        row["path"] = row["path"].strip()
        yield reader.line_num, row


def _reason(row: dict, path: str) -> str:
    """A findings row's kind and score (and the image it pairs with), or the file that lists it."""
    kind = (row.get("kind") or "").strip()
    if not kind:
        return f"listed in {path}"
    score = f" (score {row['score']})" if row.get("score") else ""
    pair = f", a near-duplicate of {row['other_path']}" if row.get("other_path") else ""
    return f"{kind}{score}{pair}, in {path}"
