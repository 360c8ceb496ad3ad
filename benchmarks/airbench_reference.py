"""The CIFAR-10 reference for ``cifar_94``: Keller Jordan's airbench94 (PyTorch), run unmodified but
for its device plumbing on this machine's CPU, on the shared JPEG copy of CIFAR-10.

``configs/cifar_94.yaml`` ports airbench94's network and recipe to Keras; airbench reports 94.01%
on the original CIFAR-10 (on an A100, fp16). What that recipe reaches on *this* data (JPEG q75
re-encodings) is the target that matters, so this script runs the reference itself:

- It reads ``legacy/airbench94.py`` (the uncompiled airbench94) from a checkout of
  github.com/KellerJordan/cifar10-airbench, and changes only what ties it to a CUDA GPU, each
  change checked to match exactly where expected (``CPU_PORT``): tensors on the CPU; its fp16
  (``.half()``) becomes bfloat16, the CPU's 16-bit float (AMX/AVX-512 BF16 kernels; fp16
  convolutions on a CPU are emulated and far slower); CUDA timing events become wall-clock
  ones; ``RUNS`` runs instead of 25.
- Its loader reads ``cifar10/train.pt`` and ``test.pt`` when they exist (else it downloads with
  torchvision): this script writes them from the JPEG folder (classes in folder order, which is
  CIFAR-10's own), so the reference trains and tests on exactly the images ``cifar_94`` does.
  torchvision is not importable beside this machine's torch build; the loader only uses its
  ``transforms.Normalize``, given here as a stand-in module.

PyTorch lives in a benchmark-only virtualenv, never in the project's dependencies:

    python3.11 -m venv /work/torch-bench-venv && /work/torch-bench-venv/bin/pip install torch==2.13.0 pillow
    /work/torch-bench-venv/bin/python benchmarks/airbench_reference.py --airbench /path/to/cifar10-airbench \\
        --data /tmp/cifar10 --work /tmp/airbench_ref [--runs 1] [--precision bfloat16|float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

# (what the reference says, what it says here, how many times it must occur)
CPU_PORT = (
    ("torch.device(gpu)", "torch.device('cpu')", 1),
    (".half()", ".to(HALF)", 2),
    ("torch.half", "HALF", 1),
    (".cuda()", "", 1),
    ("torch.cuda.Event(enable_timing=True)", "WallClockEvent()", 2),
    ("torch.cuda.synchronize()", "None", 3),
    ("range(25)", "range(RUNS)", 1),
)


class WallClockEvent:
    """torch.cuda.Event's record / elapsed_time (milliseconds) on the CPU's clock."""

    def record(self) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: WallClockEvent) -> float:
        return (end.at - self.at) * 1000


def ported(source: str) -> str:
    for before, after, count in CPU_PORT:
        found = source.count(before)
        if found != count:
            raise SystemExit(f"airbench94.py has {found} of {before!r} where {count} were expected: another version?")
        source = source.replace(before, after)
    return source


def write_tensors(data: Path, out: Path) -> None:
    """``train.pt`` / ``test.pt`` as the reference's loader saves them from torchvision: uint8
    [N, 32, 32, 3] images, int64 labels, class names."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        target = out / f"{split}.pt"
        if target.exists():
            continue
        classes = sorted(p.name for p in (data / split).iterdir() if p.is_dir())
        files = [(f, label) for label, name in enumerate(classes) for f in sorted((data / split / name).iterdir())]
        images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])
        labels = torch.tensor([label for _, label in files])
        torch.save({"images": torch.from_numpy(images), "labels": labels, "classes": classes}, target)
        print(f"{split}: {len(files)} images, {len(classes)} classes -> {target}", flush=True)


def torchvision_stand_in() -> None:
    """``torchvision`` and ``torchvision.transforms.Normalize``: all the reference uses of it once
    its data files exist."""

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, images):
            shape = (-1, 1, 1)
            mean = self.mean.to(images.device, images.dtype).view(shape)
            return (images - mean) / self.std.to(images.device, images.dtype).view(shape)

    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = Normalize  # type: ignore[attr-defined]
    torchvision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": torchvision, "torchvision.transforms": transforms})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airbench", type=Path, required=True, help="a checkout of KellerJordan/cifar10-airbench")
    parser.add_argument("--data", type=Path, required=True, help="the CIFAR-10 JPEG folder (train/, test/)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    write_tensors(args.data, args.work / "cifar10")
    reference = (args.airbench / "legacy" / "airbench94.py").resolve()
    source = ported(reference.read_text())
    sys.argv[0] = str(reference)  # it saves the code it ran (sys.argv[0]) beside its accuracies
    torchvision_stand_in()
    os.chdir(args.work)  # the reference reads ./cifar10 and writes ./logs
    started = time.perf_counter()
    namespace = {
        "__name__": "__main__",
        "HALF": getattr(torch, args.precision),
        "RUNS": args.runs,
        "WallClockEvent": WallClockEvent,
    }
    exec(compile(source, "airbench94.py (CPU port)", "exec"), namespace)
    print(
        f"wall time {time.perf_counter() - started:.0f} s for {args.runs} run(s) ({args.precision}, "
        f"{args.threads} threads, torch {torch.__version__})"
    )


if __name__ == "__main__":
    main()
