"""``visionpipe gc``: free the run root of the artifacts nothing needs any more (``visionpipe.gc``
decides what; this prints it and, without ``--dry-run``, removes it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionpipe.cli_args import add_config_arguments, config_of


def add_command(sub, common: argparse.ArgumentParser) -> None:
    gc = sub.add_parser(
        "gc",
        parents=[common],
        help="remove the artifacts no retained run, served version or next run needs (never the served models)",
    )
    add_config_arguments(gc, "config whose run.root, push destination and export.model_name to use")
    gc.add_argument("--keep-runs", type=int, default=5, help="keep everything the newest N runs used (default 5)")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    gc.set_defaults(handler=_gc)


def _gc(args) -> int:
    from visionpipe import gc
    from visionpipe.components.train.input_pipeline import cache_root
    from visionpipe.pipeline.metadata import MetadataStore
    from visionpipe.pipeline.runner import RootLock

    if args.keep_runs < 0:
        raise SystemExit("visionpipe gc: --keep-runs must be 0 or more")
    config = config_of(args)
    root = Path(config.run.root).resolve()
    if not (root / "metadata.sqlite").is_file():
        print(f"gc: no runs under {root}; nothing to do")
        return 0
    with RootLock(root):  # refused, with what to do, while a run holds the root
        store = MetadataStore(root / "metadata.sqlite")
        try:
            cache = cache_root(config.input.cache_dir, root)
            found = gc.plan(
                store, config.push.serving_root(config.run.root), config.export.model_name, args.keep_runs, cache
            )
            _describe(found, args.keep_runs)
            if args.dry_run:
                print("gc: dry run, nothing removed")
                return 0
            freed = gc.remove(store, found, lambda line: print(line, flush=True))  # as it goes
            print(
                f"gc: removed {len(found.removable) + len(found.unfinished)} artifacts and {len(found.caches)} "
                f"unfinished input caches, {freed / 1e6:.1f} MB freed"
            )
        finally:
            store.close()
    return 0


def _describe(found, keep_runs: int) -> None:
    from visionpipe.gc import disk_bytes

    runs = ", ".join(map(str, found.retained_runs)) or "none"
    served = ", ".join(f"{v}" + (f" ({'/'.join(labels)})" if labels else "") for v, labels in found.served.items())
    print(
        f"gc: keeping what the {keep_runs} newest runs used (runs {runs}), each stage's latest outputs and the "
        f"lineage of the served versions ({served or 'none'}): {found.kept} artifacts"
    )
    if found.unfinished:
        print(f"gc: finishing an interrupted gc: {len(found.unfinished)} artifacts already marked removed")
    total = 0
    for artifact in found.removable:
        size = disk_bytes(artifact.path)
        total += size
        print(f"  can go: {artifact.TYPE} {artifact.path} ({size / 1e6:.1f} MB)")
    for cache in found.caches:
        size = disk_bytes(cache)
        total += size
        print(f"  can go: input-cache {cache} ({size / 1e6:.1f} MB, its writing was stopped)")
    print(
        f"gc: {len(found.removable)} artifacts and {len(found.caches)} unfinished input caches can go, "
        f"{total / 1e6:.1f} MB"
    )
