"""Slices for bias auditing: accuracy per class, per source sub-folder, per original image
size and per original colour mode, with the slices far below the overall figure flagged.

The size and mode are what the user had before ingest fitted the image to the model
(recorded in every example), so "small photos do worse" or "grayscale scans do worse" show
up even though the model only ever sees one size and channel count.
"""

from __future__ import annotations

import posixpath

import numpy as np

from visionpipe.components.evaluate.config import SliceConfig

SIZE_BUCKETS = ((64, "short side <= 64 px"), (128, "65-128 px"), (256, "129-256 px"), (512, "257-512 px"))
LARGEST_BUCKET = "short side > 512 px"


def size_bucket(height: int, width: int) -> str:
    short = min(height, width)
    if short <= 0:
        return "unknown size"
    return next((name for limit, name in SIZE_BUCKETS if short <= limit), LARGEST_BUCKET)


def source_folder(source: str, class_name: str) -> str | None:
    """The sub-folder an image came from below its class folder (``<class>/<sub>/x.jpg`` ->
    ``<class>/<sub>``), or None when it sits directly in the class folder or has no path."""
    parts = source.replace("\\", "/").split("/")
    if class_name not in parts[:-1]:
        return None
    below = parts[len(parts) - 1 - parts[::-1].index(class_name) : -1]
    return posixpath.join(*below) if len(below) > 1 else None


def slice_table(correct: np.ndarray, split, classes: list[str], config: SliceConfig) -> dict:
    """{"overall": accuracy, "slices": [{feature, slice, images, accuracy, gap, flagged}, ...]},
    features with a single value (nothing to compare) left out and named in "uniform"."""
    overall = float(correct.mean())
    labels = split.labels
    features = {
        "class": [classes[i] for i in labels],
        "source folder": [
            source_folder(s, classes[i]) or "(class folder itself)" for s, i in zip(split.sources, labels, strict=True)
        ],  # fmt: skip
        "original size": [size_bucket(h, w) for h, w in zip(split.heights, split.widths, strict=True)],
        "colour mode": [m or "unknown" for m in split.modes],
    }
    rows, uniform = [], []
    for feature, column in features.items():
        values = np.asarray(column)
        names = sorted(set(values.tolist()))
        if len(names) < 2 or (feature == "source folder" and names == ["(class folder itself)"]):
            uniform.append(feature)
            continue
        for name in names:
            members = values == name
            accuracy = float(correct[members].mean())
            images = int(members.sum())
            gap = overall - accuracy
            rows.append(
                {
                    "feature": feature,
                    "slice": name,
                    "images": images,
                    "accuracy": accuracy,
                    "gap": gap,
                    "flagged": bool(gap > config.max_gap and images >= config.min_images),
                }
            )
    return {"overall": overall, "slices": rows, "uniform": uniform}
