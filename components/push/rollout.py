"""Which versions TF Serving serves and what ``stable`` and ``canary`` name, after a push or a
promote: the models.config entry of one model, computed from the one before.

Without canary the entry serves the latest version with no labels (labels in use are
dropped: TF Serving would refuse to move ``stable`` onto a version it has not loaded yet).
With canary the new version gets ``canary`` and ``stable`` stays where it was (the version
the server was serving); a first push is stable only. ``promote`` moves ``stable`` to the
canary version and drops ``canary``.
"""

from __future__ import annotations

from collections.abc import Sequence

from visionpipe.serving.tf_serving_config import CANARY, STABLE, ModelEntry


def entry_after_push(
    before: ModelEntry | None, name: str, base_path: str, on_disk: Sequence[int], version: int, canary: bool
) -> tuple[ModelEntry, str]:
    """The entry once ``version`` is pushed, given the versions ``on_disk`` before it; and a
    sentence saying what changed."""
    labels = dict(before.labels) if before else {}
    if not canary:
        # TF Serving cannot move stable onto a version it has not loaded yet, so a direct push
        # over labels goes back to serving the latest version, without labels.
        dropped = f" (labels {dict(sorted(labels.items()))} dropped: push.canary is off)" if labels else ""
        return ModelEntry(name, base_path), f"serving the latest version ({version}){dropped}"
    stable = labels.get(STABLE)
    if stable is None:
        served = sorted((before or ModelEntry(name, base_path)).served(on_disk))
        stable = served[-1] if served else None
    if stable is None:
        return ModelEntry(name, base_path, (version,), {STABLE: version}), f"first version: stable -> {version}"
    note = f"canary -> {version}, stable stays at {stable}"
    return ModelEntry(name, base_path, (stable, version), {STABLE: stable, CANARY: version}), note


def entry_after_promote(before: ModelEntry) -> ModelEntry:
    """``stable`` on the canary version, which is then the only version served."""
    canary = before.labels[CANARY]
    return ModelEntry(before.name, before.base_path, (canary,), {STABLE: canary})
