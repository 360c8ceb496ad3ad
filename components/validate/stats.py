"""Per-split image statistics as a Beam CombineFn, and their tensorflow_metadata protos.

One accumulator per split counts classes, formats, original modes and channels, and tracks
image sizes (min/max/mean/std and a coarse height x width histogram). For the train split
it also sums pixel values per channel, for the mean/std of the model's normalisation layer,
over a deterministic sample of images chosen by content hash: the estimate is as good as the
full pass for normalisation, and validate's cost stays bounded on large datasets.
"""
from __future__ import annotations

import collections
import io
import math

import apache_beam as beam
import numpy as np

from components.common import record_format

SIZE_EDGES = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # lower edges of size buckets (px)


def bucket(pixels: int) -> int:
    return max(edge for edge in SIZE_EDGES if edge <= pixels)


def in_pixel_sample(sha256: str, fraction: float) -> bool:
    """A fixed pseudo-random subset: the same images are sampled on every run."""
    return int(sha256[:8], 16) < fraction * 0x100000000


class ImageStatsFn(beam.CombineFn):
    def __init__(self, channels: int, pixel_sample_fraction: float):
        self._channels = channels
        self._pixel_fraction = pixel_sample_fraction  # 0 = no pixel statistics (val/test)

    def create_accumulator(self):
        return {"count": 0, "classes": collections.Counter(), "formats": collections.Counter(),
                "modes": collections.Counter(), "channels": collections.Counter(),
                "size_buckets": collections.Counter(), "converted": 0,
                "height": [math.inf, -math.inf, 0.0, 0.0], "width": [math.inf, -math.inf, 0.0, 0.0],
                "pixel_images": 0, "pixels": 0, "sum": np.zeros(self._channels), "sumsq": np.zeros(self._channels)}

    def add_input(self, acc, serialized: bytes):
        r = record_format.parse(serialized)
        acc["count"] += 1
        acc["classes"][r.class_name] += 1
        acc["formats"][r.format] += 1
        acc["modes"][r.mode] += 1
        acc["channels"][str(r.channels)] += 1
        acc["size_buckets"][f"{bucket(r.height)}x{bucket(r.width)}"] += 1
        acc["converted"] += r.converted
        for dim, v in (("height", r.height), ("width", r.width)):
            s = acc[dim]
            acc[dim] = [min(s[0], v), max(s[1], v), s[2] + v, s[3] + v * v]
        if self._pixel_fraction and in_pixel_sample(r.sha256, self._pixel_fraction):
            from PIL import Image
            image = Image.open(io.BytesIO(r.encoded)).convert("L" if self._channels == 1 else "RGB")
            pixels = np.asarray(image, np.float64).reshape(-1, self._channels) / 255.0
            acc["pixel_images"] += 1
            acc["pixels"] += pixels.shape[0]
            acc["sum"] += pixels.sum(axis=0)
            acc["sumsq"] += np.square(pixels).sum(axis=0)
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
            result[dim] = {"min": lo if acc["count"] else 0, "max": hi if acc["count"] else 0,
                           "mean": mean, "std": math.sqrt(max(ss / n - mean * mean, 0.0))}
        if acc["pixels"]:
            mean = acc["sum"] / acc["pixels"]
            std = np.sqrt(np.maximum(acc["sumsq"] / acc["pixels"] - mean ** 2, 0.0))
            result.update(pixel_mean=mean.tolist(), pixel_std=std.tolist(), pixel_images=acc["pixel_images"])
        return result


def to_proto(split_stats: dict[str, dict]):
    """DatasetFeatureStatisticsList with one dataset per split, readable by TFDV/Facets."""
    from tensorflow_metadata.proto.v0 import statistics_pb2 as sp

    out = sp.DatasetFeatureStatisticsList()
    for split, stats in split_stats.items():
        ds = out.datasets.add(name=split, num_examples=stats["count"])
        for feature, key in (("label", "classes"), ("format", "formats"), ("mode", "modes"),
                             ("channels", "channels")):
            f = ds.features.add(type=sp.FeatureNameStatistics.STRING)
            f.path.step.append(feature)
            counts = sorted(stats[key].items(), key=lambda kv: (-kv[1], kv[0]))
            f.string_stats.unique = len(counts)
            f.string_stats.common_stats.num_non_missing = stats["count"]
            for rank, (value, count) in enumerate(counts):
                f.string_stats.top_values.add(value=str(value), frequency=count)
                f.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank,
                                                          label=str(value), sample_count=count)
        for dim, axis in (("height", 0), ("width", 1)):
            f = ds.features.add(type=sp.FeatureNameStatistics.INT)
            f.path.step.append(dim)
            d = stats[dim]
            f.num_stats.min, f.num_stats.max, f.num_stats.mean, f.num_stats.std_dev = (
                d["min"], d["max"], d["mean"], d["std"])
            f.num_stats.common_stats.num_non_missing = stats["count"]
            histogram = f.num_stats.histograms.add(type=sp.Histogram.STANDARD)
            per_edge = collections.Counter()
            for cell, count in stats["size_buckets"].items():
                per_edge[int(cell.split("x")[axis])] += count
            for low, high in zip(SIZE_EDGES, SIZE_EDGES[1:] + (math.inf,)):
                histogram.buckets.add(low_value=low, high_value=high, sample_count=per_edge[low])
        for i, (m, s) in enumerate(zip(stats.get("pixel_mean", []), stats.get("pixel_std", []))):
            f = ds.features.add(type=sp.FeatureNameStatistics.FLOAT)
            f.path.step.append(f"pixel_channel_{i}")
            f.num_stats.mean, f.num_stats.std_dev = m, s
    return out
