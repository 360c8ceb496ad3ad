"""Every exported file of one trained model against its float32 TFLite file, same run: size,
gzipped size, accuracy drop and batch-1 latency, as the export stage measures them.

Trains (or reuses, by the runner's cache) a model on an image folder through the pipeline,
with every file kind and pruning + QAT on, then reads the export's table and prints ratios.
Latencies in the table are medians of 100 timed calls after warm-up; ``--repeats`` re-runs
the export stage and takes the median of each figure.

    python benchmarks/compression.py /tmp/cifar10 --repeats 3
    python benchmarks/compression.py /tmp/caltech101/101_ObjectCategories --config configs/photos.yaml \\
        --set model.name=mobilenet_v3_small --set 'model.args={alpha: 1.0}' --set preprocessing.image_size=[96,96]
    python benchmarks/compression.py /tmp/cifar10 --set export.compression.channels.fraction=0.5 \
        --set export.compression.prune.enabled=false --set export.compression.qat=false   # channel pruning only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent

EVERYTHING = [
    "export.tflite_float16=true",
    "export.tflite_dynamic_int8=true",
    "export.compression.prune.enabled=true",
    "export.compression.qat=true",
    "export.compression.preserve_sparsity=false",
    "export.max_accuracy_drop=1.0",  # measure everything; the gates are the pipeline's business
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cifar10.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "vp-bench-compression")
    args = parser.parse_args()

    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(  # --set last: it can turn a file kind of EVERYTHING off again
        args.config, [f"run.root={args.root}", f"data.path={args.folder}", *EVERYTHING, *args.overrides]
    )
    tables = []
    for repeat in range(args.repeats):
        result = run_pipeline(config, start="export" if repeat else None, force=bool(repeat))
        assert result.ok, result.failure()
        tables.append(json.loads((result.outputs("export")["exported_model"].path / "artifacts.json").read_text()))

    def median(name: str, key: str) -> float:
        return statistics.median(t[name][key] for t in tables)

    float_ = "tflite_float"
    print(f"\n{config.model.name} {config.model.args}; medians of {args.repeats} exports")
    print(f"{'artifact':<22} {'accuracy':>8} {'drop':>7} {'KiB':>7} {'smaller':>8} {'gz KiB':>7} {'gz smaller':>10} "
          f"{'zeros':>6} {'ms 1t':>7} {'faster 1t':>9} {'ms 4t':>7} {'faster 4t':>9}")  # fmt: skip
    for name in tables[0]:
        if not name.startswith("tflite"):
            continue
        size, gz = median(name, "size_bytes"), median(name, "gzip_bytes")
        t1, t4 = median(name, "p50_ms_1t"), median(name, "p50_ms_4t")
        row = [
            f"{name:<22}",
            f"{median(name, 'accuracy'):>8.4f}",
            f"{median(name, 'drop'):>7.4f}",
            f"{size / 1024:>7.0f}",
            f"{median(float_, 'size_bytes') / size:>7.2f}x",
            f"{gz / 1024:>7.0f}",
            f"{median(float_, 'gzip_bytes') / gz:>9.2f}x",
            f"{median(name, 'sparsity'):>6.0%}",
            f"{t1:>7.2f}",
            f"{median(float_, 'p50_ms_1t') / t1:>8.2f}x",
            f"{t4:>7.2f}",
            f"{median(float_, 'p50_ms_4t') / t4:>8.2f}x",
        ]
        print(" ".join(row))


if __name__ == "__main__":
    main()
