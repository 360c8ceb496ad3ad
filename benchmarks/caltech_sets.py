"""Small real photo sets in the common ``train/`` + ``val/`` (+ ``test/``) layout, made from
the shared Caltech-101 photos with symlinks (nothing copied), seeded: the same photos in the
same splits on every machine.

    python benchmarks/caltech_sets.py /tmp/caltech101/101_ObjectCategories /tmp/photo_sets

Sets (photos per class in brackets: train / val / test):
- ``easy2``: airplanes vs Motorbikes, 200 photos each (100 / 40 / 60): an easy pair.
- ``hard2``: ketch vs schooner, all 177 photos (two kinds of sailing boat; 50% / 20% / 30%).
- ``hard2b``: crocodile vs crocodile_head, all 101 photos (the same animal, whole and head only).
- ``five``: chandelier, hawksbill, grand_piano, brain, butterfly, 80 photos each (40 / 16 / 24).
- ``ten``: ten classes of 100 photos (50 / 20 / 30), about 1,000 photos.
- ``trainval2``: the easy pair again in the issue's layout, ``train/`` + ``val/`` only (no test
  folder: visionpipe carves one out of train), 218 train and 153 val photos like the folder in
  issue 20's report.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

TEN = ("airplanes", "Motorbikes", "Faces_easy", "watch", "Leopards", "bonsai", "car_side", "ketch", "chandelier",
       "hawksbill")  # fmt: skip
SETS = {
    # name: (classes, photos per class (None = all), (train, val, test) shares)
    "easy2": (("airplanes", "Motorbikes"), 200, (0.5, 0.2, 0.3)),
    "hard2": (("ketch", "schooner"), None, (0.5, 0.2, 0.3)),
    "hard2b": (("crocodile", "crocodile_head"), None, (0.5, 0.2, 0.3)),
    "five": (("chandelier", "hawksbill", "grand_piano", "brain", "butterfly"), 80, (0.5, 0.2, 0.3)),
    "ten": (TEN, 100, (0.5, 0.2, 0.3)),
    "trainval2": (("airplanes", "Motorbikes"), 186, (0.59, 0.41, 0.0)),
}
SPLITS = ("train", "val", "test")


def make_set(source: Path, out: Path, classes, per_class: int | None, shares, seed: int) -> dict[str, int]:
    """Links each class's photos (a seeded sample) into ``out/<split>/<class>/``; returns photos per split."""
    if out.exists():
        shutil.rmtree(out)
    counts = dict.fromkeys(SPLITS, 0)
    for name in classes:
        photos = sorted((source / name).iterdir())
        random.Random(f"{seed}-{name}").shuffle(photos)
        photos = photos[:per_class] if per_class else photos
        train_end = round(len(photos) * shares[0])
        val_end = train_end + round(len(photos) * shares[1])
        parts = (photos[:train_end], photos[train_end:val_end], photos[val_end:] if shares[2] else [])
        for split, part in zip(SPLITS, parts, strict=True):
            for photo in part:
                link = out / split / name / photo.name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(photo.resolve())
            counts[split] += len(part)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="Caltech-101's 101_ObjectCategories folder")
    parser.add_argument("out", type=Path, help="one sub-folder per set is (re)made here")
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.sets:
        classes, per_class, shares = SETS[name]
        counts = make_set(args.source, args.out / name, classes, per_class, shares, args.seed)
        print(f"{args.out / name}: " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))


if __name__ == "__main__":
    main()
