"""What a phone developer asks of each exported file: size (raw and gzipped, which is what an
app download costs), the sparsity of its weights read back from the flatbuffer itself (so a
pruning that did not survive conversion shows), and batch-1 latency.

Latency is timed ``invoke()`` calls of ai-edge-litert's interpreter on one image, after a
warm-up, at 1 and 4 threads; XNNPACK is its default delegate (int8 included). Medians and
95th percentiles over ``runs`` calls.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def sizes(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9))}


def tflite_sparsity(path: Path) -> float:
    """The share of zeros among the weights of convolutions and dense layers (their filter
    input), over the whole file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    # float16 files keep weights in float16 behind a DEQUANTIZE op: read its input instead.
    dequantized = {int(op["outputs"][0]): int(op["inputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}
    zeros = total = 0
    for op in ops:
        if op["op_name"] in WEIGHTED_OPS and len(op["inputs"]) > 1:
            index = int(op["inputs"][1])
            weights = interpreter.get_tensor(dequantized.get(index, index))
            zeros += int(np.count_nonzero(weights == 0))
            total += weights.size
    return zeros / total if total else 0.0


def latency_ms(predict, image: np.ndarray, threads: int, runs: int = 100, warmup: int = 10) -> dict[str, float]:
    """Batch-1 latency of ``predict`` (a runtime made with ``threads`` threads) on ``image``."""
    for _ in range(warmup):
        predict(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(image)
        times.append((time.perf_counter() - start) * 1000)
    return {f"p50_ms_{threads}t": float(np.median(times)), f"p95_ms_{threads}t": float(np.percentile(times, 95))}


def latencies(make_predict, image: np.ndarray) -> dict[str, float]:
    """At 1 and 4 threads; ``make_predict(threads)`` builds the runtime."""
    return {**latency_ms(make_predict(1), image, 1), **latency_ms(make_predict(4), image, 4)}
