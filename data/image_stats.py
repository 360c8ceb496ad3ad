"""Per-split image statistics: what ingest measures per image, and a Beam CombineFn over it.

Ingest workers measure each image while it is decoded anyway (``ImageMeta``), and the
pipeline combines them per split: class, format, original mode and channel counts, image
sizes (min/max/mean/std and a coarse height x width histogram), and, over a deterministic
sample of images, per-channel pixel sums for the mean/std of the model's normalisation
(a sample of thousands estimates them as well as a full pass, at a bounded cost).
"""

from __future__ import annotations

import collections
import itertools
import math
from typing import NamedTuple

import apache_beam as beam
import numpy as np

from visionpipe.data import label_sets

SIZE_EDGES = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # lower edges of size buckets (px)


class ImageMeta(NamedTuple):
    class_name: str
    format: str
    mode: str  # original
    height: int
    width: int
    channels: int  # original
    converted: bool
    # (pixel count, per-channel sum, per-channel sum of squares) in [0, 1] in the channel
    # space the model sees, for sampled images; None for the others.
    pixels: tuple[int, tuple[float, ...], tuple[float, ...]] | None


def in_pixel_sample(sha256: str, fraction: float) -> bool:
    """A fixed pseudo-random subset by content hash: the same images on every run."""
    return int(sha256[:8], 16) < fraction * 0x100000000


_LEVELS = np.arange(256, dtype=np.float64) / 255.0


def pixel_moments(image) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Of a Pillow image already in the model's mode (L or RGB), from its histogram: Pillow
    counts the pixel values in C, ten times faster than summing the pixels as floats."""
    histogram = np.asarray(image.histogram(), np.float64).reshape(-1, 256)  # a row per channel
    return image.width * image.height, tuple(histogram @ _LEVELS), tuple(histogram @ np.square(_LEVELS))


def bucket(pixels: int) -> int:
    return max(edge for edge in SIZE_EDGES if edge <= pixels)


class ImageStatsFn(beam.CombineFn):
    """ImageMeta of one split -> a JSON-ready dict of its statistics."""

    def create_accumulator(self):
        return {
            "count": 0,
            "classes": collections.Counter(),
            "formats": collections.Counter(),
            "modes": collections.Counter(),
            "channels": collections.Counter(),
            "size_buckets": collections.Counter(),
            "converted": 0,
            "height": [math.inf, -math.inf, 0.0, 0.0],
            "width": [math.inf, -math.inf, 0.0, 0.0],
            "pixel_images": 0,
            "pixels": 0,
            "sum": 0.0,
            "sumsq": 0.0,
        }

    def add_input(self, acc, meta: ImageMeta):
        acc["count"] += 1
        acc["classes"][meta.class_name] += 1
        acc["formats"][meta.format] += 1
        acc["modes"][meta.mode] += 1
        acc["channels"][str(meta.channels)] += 1
        acc["size_buckets"][f"{bucket(meta.height)}x{bucket(meta.width)}"] += 1
        acc["converted"] += meta.converted
        for dim, v in (("height", meta.height), ("width", meta.width)):
            s = acc[dim]
            acc[dim] = [min(s[0], v), max(s[1], v), s[2] + v, s[3] + v * v]
        if meta.pixels is not None:
            count, total, squares = meta.pixels
            acc["pixel_images"] += 1
            acc["pixels"] += count
            acc["sum"] = acc["sum"] + np.asarray(total)
            acc["sumsq"] = acc["sumsq"] + np.asarray(squares)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        out = next(accumulators)
        for acc in accumulators:
            for key in ("count", "converted", "pixel_images", "pixels", "sum", "sumsq"):
                out[key] = out[key] + acc[key]
            for key in ("classes", "formats", "modes", "channels", "size_buckets"):
                out[key].update(acc[key])
            for dim in ("height", "width"):
                a, b = out[dim], acc[dim]
                out[dim] = [min(a[0], b[0]), max(a[1], b[1]), a[2] + b[2], a[3] + b[3]]
        return out

    def extract_output(self, acc):
        n = max(acc["count"], 1)
        result = {key: dict(acc[key]) for key in ("classes", "formats", "modes", "channels", "size_buckets")}
        result.update(count=acc["count"], converted=acc["converted"])
        for dim in ("height", "width"):
            lo, hi, s, ss = acc[dim]
            mean = s / n
            result[dim] = {
                "min": lo if acc["count"] else 0,
                "max": hi if acc["count"] else 0,
                "mean": mean,
                "std": math.sqrt(max(ss / n - mean * mean, 0.0)),
            }
        if acc["pixels"]:
            mean = acc["sum"] / acc["pixels"]
            std = np.sqrt(np.maximum(acc["sumsq"] / acc["pixels"] - mean**2, 0.0))
            result.update(pixel_mean=mean.tolist(), pixel_std=std.tolist(), pixel_images=acc["pixel_images"])
        return result


def by_label(stats: dict) -> dict:
    """A multi-label split's statistics: ``classes`` counted per label (an image counts once for each
    of its labels), ``label_sets`` the images per label set (``label_sets``' canonical strings),
    ``unlabelled`` the images with no label, ``cooccurrence`` the images per pair of labels, and
    the mean number of labels per image."""
    sets = stats["classes"]
    per_label: collections.Counter[str] = collections.Counter()
    pairs: collections.Counter[str] = collections.Counter()
    for label_set, count in sets.items():
        names = label_sets.decode(label_set)
        per_label.update(dict.fromkeys(names, count))
        pairs.update(dict.fromkeys((label_sets.encode(pair) for pair in itertools.combinations(names, 2)), count))
    return {
        **stats,
        "classes": dict(per_label),
        "label_sets": dict(sets),
        "unlabelled": sets.get("", 0),
        "cooccurrence": dict(pairs.most_common()),  # "a|b" -> images carrying both labels
        "labels_per_image": sum(per_label.values()) / max(stats["count"], 1),
    }


def empty_split() -> dict:
    return ImageStatsFn().extract_output(ImageStatsFn().create_accumulator())


def to_proto(split_stats: dict[str, dict]):
    """DatasetFeatureStatisticsList with one dataset per split, readable by TFDV/Facets."""
    from tensorflow_metadata.proto.v0 import statistics_pb2 as sp

    out = sp.DatasetFeatureStatisticsList()
    for split, stats in split_stats.items():
        ds = out.datasets.add(name=split, num_examples=stats["count"])
        for feature, key in (("label", "classes"), ("format", "formats"), ("mode", "modes"), ("channels", "channels")):
            f = ds.features.add(type=sp.FeatureNameStatistics.STRING)
            f.path.step.append(feature)
            counts = sorted(stats[key].items(), key=lambda kv: (-kv[1], kv[0]))
            f.string_stats.unique = len(counts)
            # Multi-label: an image holds as many label values as it has labels, or none.
            unlabelled = stats.get("unlabelled", 0) if feature == "label" else 0
            f.string_stats.common_stats.num_non_missing = stats["count"] - unlabelled
            f.string_stats.common_stats.tot_num_values = sum(stats[key].values())
            for rank, (value, count) in enumerate(counts):
                f.string_stats.top_values.add(value=str(value), frequency=count)
                f.string_stats.rank_histogram.buckets.add(
                    low_rank=rank, high_rank=rank, label=str(value), sample_count=count
                )
        for dim, axis in (("height", 0), ("width", 1)):
            f = ds.features.add(type=sp.FeatureNameStatistics.INT)
            f.path.step.append(dim)
            d = stats[dim]
            f.num_stats.min, f.num_stats.max, f.num_stats.mean, f.num_stats.std_dev = (
                d["min"],
                d["max"],
                d["mean"],
                d["std"],
            )
            f.num_stats.common_stats.num_non_missing = stats["count"]
            histogram = f.num_stats.histograms.add(type=sp.Histogram.STANDARD)
            per_edge: collections.Counter[int] = collections.Counter()
            for cell, count in stats["size_buckets"].items():
                per_edge[int(cell.split("x")[axis])] += count
            for low, high in zip(SIZE_EDGES, SIZE_EDGES[1:] + (math.inf,), strict=True):
                histogram.buckets.add(low_value=low, high_value=high, sample_count=per_edge[low])
        for i, (m, s) in enumerate(zip(stats.get("pixel_mean", []), stats.get("pixel_std", []), strict=True)):
            f = ds.features.add(type=sp.FeatureNameStatistics.FLOAT)
            f.path.step.append(f"pixel_channel_{i}")
            f.num_stats.mean, f.num_stats.std_dev = m, s
    return out
