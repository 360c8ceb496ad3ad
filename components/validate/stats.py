"""Per-split image statistics as a Beam CombineFn, and their tensorflow_metadata protos.

One accumulator per split counts classes, formats, original modes and channels, tracks image
sizes, and (for the train split) sums pixel values per channel for the mean/std that the
model's normalisation layer uses.
"""
from __future__ import annotations

import collections
import io
import math

import apache_beam as beam
import numpy as np

FEATURES = ("image/class_name", "image/format", "image/mode", "image/channels", "image/height",
            "image/width", "image/converted", "image/source")


def parse(serialized: bytes) -> dict:
    import tensorflow as tf  # workers only
    feature = tf.train.Example.FromString(serialized).features.feature
    record = {}
    for name in FEATURES + ("image/encoded",):
        f = feature[name]
        record[name] = f.bytes_list.value[0] if f.bytes_list.value else f.int64_list.value[0]
    for name in ("image/class_name", "image/format", "image/mode", "image/source"):
        record[name] = record[name].decode()
    return record


class ImageStatsFn(beam.CombineFn):
    def __init__(self, channels: int, with_pixels: bool):
        self._channels = channels
        self._with_pixels = with_pixels

    def create_accumulator(self):
        return {"count": 0, "classes": collections.Counter(), "formats": collections.Counter(),
                "modes": collections.Counter(), "channels": collections.Counter(),
                "converted": 0, "height": [math.inf, -math.inf, 0.0, 0.0],
                "width": [math.inf, -math.inf, 0.0, 0.0],
                "pixels": 0, "sum": np.zeros(self._channels), "sumsq": np.zeros(self._channels)}

    def add_input(self, acc, record):
        acc["count"] += 1
        acc["classes"][record["image/class_name"]] += 1
        acc["formats"][record["image/format"]] += 1
        acc["modes"][record["image/mode"]] += 1
        acc["channels"][record["image/channels"]] += 1
        acc["converted"] += record["image/converted"]
        for dim in ("height", "width"):
            v, s = record[f"image/{dim}"], acc[dim]
            acc[dim] = [min(s[0], v), max(s[1], v), s[2] + v, s[3] + v * v]
        if self._with_pixels:
            from PIL import Image
            image = Image.open(io.BytesIO(record["image/encoded"]))
            pixels = np.asarray(image.convert("L" if self._channels == 1 else "RGB"), np.float64) / 255.0
            pixels = pixels.reshape(-1, self._channels)
            acc["pixels"] += pixels.shape[0]
            acc["sum"] += pixels.sum(axis=0)
            acc["sumsq"] += np.square(pixels).sum(axis=0)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        out = next(accumulators)
        for acc in accumulators:
            out["count"] += acc["count"]
            out["converted"] += acc["converted"]
            out["pixels"] += acc["pixels"]
            out["sum"] = out["sum"] + acc["sum"]
            out["sumsq"] = out["sumsq"] + acc["sumsq"]
            for key in ("classes", "formats", "modes", "channels"):
                out[key].update(acc[key])
            for dim in ("height", "width"):
                a, b = out[dim], acc[dim]
                out[dim] = [min(a[0], b[0]), max(a[1], b[1]), a[2] + b[2], a[3] + b[3]]
        return out

    def extract_output(self, acc):
        n = max(acc["count"], 1)
        result = {"count": acc["count"], "classes": dict(acc["classes"]), "formats": dict(acc["formats"]),
                  "modes": dict(acc["modes"]), "channels": {str(k): v for k, v in acc["channels"].items()},
                  "converted": acc["converted"]}
        for dim in ("height", "width"):
            lo, hi, s, ss = acc[dim]
            mean = s / n
            result[dim] = {"min": lo if acc["count"] else 0, "max": hi if acc["count"] else 0,
                           "mean": mean, "std": math.sqrt(max(ss / n - mean * mean, 0.0))}
        if acc["pixels"]:
            mean = acc["sum"] / acc["pixels"]
            std = np.sqrt(np.maximum(acc["sumsq"] / acc["pixels"] - mean ** 2, 0.0))
            result["pixel_mean"], result["pixel_std"] = mean.tolist(), std.tolist()
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
            counts = sorted(stats[key].items(), key=lambda kv: -kv[1])
            f.string_stats.unique = len(counts)
            f.string_stats.common_stats.num_non_missing = stats["count"]
            for rank, (value, count) in enumerate(counts):
                f.string_stats.top_values.add(value=str(value), frequency=count)
                f.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank,
                                                          label=str(value), sample_count=count)
        for dim in ("height", "width"):
            f = ds.features.add(type=sp.FeatureNameStatistics.INT)
            f.path.step.append(dim)
            d = stats[dim]
            f.num_stats.min, f.num_stats.max, f.num_stats.mean, f.num_stats.std_dev = (
                d["min"], d["max"], d["mean"], d["std"])
            f.num_stats.common_stats.num_non_missing = stats["count"]
        for i, (m, s) in enumerate(zip(stats.get("pixel_mean", []), stats.get("pixel_std", []))):
            f = ds.features.add(type=sp.FeatureNameStatistics.FLOAT)
            f.path.step.append(f"pixel_channel_{i}")
            f.num_stats.mean, f.num_stats.std_dev = m, s
    return out
