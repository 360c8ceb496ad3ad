"""What a phone developer asks of each exported file: size (raw and gzipped, which is what an
app download costs), and the sparsity of its weights read back from the flatbuffer itself, so
a pruning that did not survive conversion shows.
"""

from __future__ import annotations

import gzip
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
    zeros = total = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] in WEIGHTED_OPS and len(op["inputs"]) > 1:
            weights = interpreter.get_tensor(int(op["inputs"][1]))
            zeros += int(np.count_nonzero(weights == 0))
            total += weights.size
    return zeros / total if total else 0.0
