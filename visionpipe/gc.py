"""``visionpipe gc``: removes the artifacts that no retained run, served version or next run needs.

Kept: every artifact the newest ``keep_runs`` runs read or wrote (cached stages included); each
stage's latest outputs, which the next run resolves; and the lineage of every version in the
serving destination (the PushedModel that published it and everything it came from), so a served
model stays explained; with each kept artifact, the other outputs of the execution that wrote it,
since the cache reuses a stage's outputs together. The serving destination itself is never touched: push's
``keep_versions`` and its labels govern what is served.

Also removed: the training input pipeline's file caches that no run will read, the ones whose
writing was stopped (``unfinished_caches``); a finished cache is kept for the next run of the
same data.

Removal is two steps, safe under kill -9: the metadata store records the artifacts as removed in
one transaction (from then on no run reads them, and lineage still lists them), then their
folders are deleted. A gc that died between the two leaves marked artifacts whose folders remain;
the next gc deletes them first. gc takes the run root's lock, so it never runs beside a pipeline
run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from visionpipe.pipeline.artifacts import Artifact, PushedModel
from visionpipe.pipeline.metadata import MetadataStore
from visionpipe.serving import tf_serving_config as tfs


@dataclasses.dataclass
class Plan:
    retained_runs: list[int]  # newest first
    served: dict[int, list[str]]  # version on disk -> the labels pointing at it
    removable: list[Artifact]
    unfinished: list[Artifact]  # marked removed by a gc that was interrupted; folders still there
    kept: int
    caches: list[Path] = dataclasses.field(default_factory=list)  # unfinished_caches


def disk_bytes(path: Path) -> int:
    """The bytes of the files under ``path`` (a file's own size; 0 when it is gone)."""
    if path.is_file():
        return path.stat().st_size
    return sum(
        (Path(folder) / name).stat().st_size
        for folder, _, names in os.walk(path)
        for name in names
        if not (Path(folder) / name).is_symlink()
    )


def served_versions(destination: Path, model_name: str) -> dict[int, list[str]]:
    """Each version folder of ``model_name`` under the serving destination, with its labels."""
    labels: dict[int, list[str]] = {}
    config_file = destination / tfs.MODELS_CONFIG
    if config_file.is_file():
        entry = tfs.entry_named(tfs.read_models_config(config_file), model_name)
        for label, version in entry.labels.items() if entry else ():
            labels.setdefault(version, []).append(label)
    return {v: sorted(labels.get(v, [])) for v in tfs.versions_on_disk(destination / model_name)}


def unfinished_caches(cache: Path) -> list[Path]:
    """The file-cache folders under ``cache`` (``input_pipeline.cache_root``) that no run will
    read: ``[<worker>/]tfdata-*`` folders without ``dataset.FILE_CACHE_DONE``, the writes a run
    stopped (and older visionpipe's snapshot folders, keyed in a way no run finds again)."""
    from visionpipe.components.common.dataset import file_cache_written
    from visionpipe.components.train.input_pipeline import CACHE_PREFIX

    folders = [*cache.glob(f"{CACHE_PREFIX}*"), *cache.glob(f"*/{CACHE_PREFIX}*")]  # one worker; several
    return sorted(p for p in folders if p.is_dir() and not file_cache_written(p))


def plan(store: MetadataStore, destination: Path, model_name: str, keep_runs: int, cache: Path | None = None) -> Plan:
    """What gc keeps and removes (``cache``: where the file caches are); changes nothing."""
    retained = [r["id"] for r in store.runs(keep_runs)] if keep_runs else []
    needed = store.artifact_ids_of_runs(retained) | store.latest_output_ids()
    served = served_versions(destination, model_name)
    everything = store.artifacts()
    for pushed in everything:
        if isinstance(pushed, PushedModel) and pushed.properties.get("version") in served:
            base = str(pushed.properties.get("model_base_path", ""))
            if Path(base).name == model_name and pushed.id is not None:
                for step in store.lineage(pushed.id):
                    needed.update({step["artifact_id"], *step["inputs"].values()})
    needed = store.with_sibling_outputs(needed)
    live = [a for a in everything if not a.removed]
    return Plan(
        retained_runs=retained,
        served=served,
        removable=[a for a in live if a.id not in needed],
        unfinished=[a for a in everything if a.removed and a.path.exists()],
        kept=sum(a.id in needed for a in live),
        caches=unfinished_caches(cache) if cache is not None and cache.is_dir() else [],
    )


def remove(store: MetadataStore, found: Plan, say: Callable[[str], None]) -> int:
    """Marks ``found.removable`` removed in the store, then deletes their folders (and those an
    interrupted gc left); returns the bytes freed."""
    store.mark_removed(a.id for a in found.removable if a.id is not None)
    freed = 0
    for artifact in [*found.unfinished, *found.removable]:
        size = disk_bytes(artifact.path)
        if artifact.path.is_dir():
            shutil.rmtree(artifact.path)
        else:
            artifact.path.unlink(missing_ok=True)
        freed += size
        execution_dir = artifact.path.parent  # artifacts/<stage>/<id>/: gone with its last output
        if execution_dir.is_dir() and not any(execution_dir.iterdir()):
            execution_dir.rmdir()
        say(f"removed {artifact.path} ({size / 1e6:.1f} MB)")
    for cache in found.caches:
        size = disk_bytes(cache)
        shutil.rmtree(cache, ignore_errors=True)
        freed += size
        say(f"removed the unfinished input cache {cache} ({size / 1e6:.1f} MB)")
    return freed
