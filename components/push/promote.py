"""Promote: move the ``stable`` label of a model to its ``canary`` version after checks.

The canary version must be on disk and infra-blessed (push keeps each version's verdict in
``assets.extra/visionpipe_version.json``), and, unless told otherwise, its evaluation accuracy
must be at least the stable version's. The new models.config then serves the canary version
alone, labelled ``stable``; it is checked against TF Serving's rules and renamed into place.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionpipe.components.push import rollout
from visionpipe.components.push.versions import destination_lock, read_record, versions
from visionpipe.pipeline.artifacts import InfraBlessing
from visionpipe.pipeline.errors import UserError
from visionpipe.serving import tf_serving_config as tfs


@dataclasses.dataclass(frozen=True)
class Promotion:
    model_name: str
    models_config: Path
    before: tfs.ModelEntry
    after: tfs.ModelEntry
    accuracies: dict[int, float | None]  # version -> recorded evaluation accuracy

    def describe(self) -> str:
        old, new = self.before.labels.get(tfs.STABLE), self.after.labels[tfs.STABLE]
        acc = ", ".join(f"version {v}: {a:.4f}" for v, a in self.accuracies.items() if a is not None)
        return (
            f"{self.model_name}: stable {old} -> {new}; canary label removed; serving versions "
            f"{list(self.before.versions or ())} -> {list(self.after.versions or ())}"
            + (f" (accuracy {acc})" if acc else "")
            + f"; wrote {self.models_config}"
        )


def promote(destination: Path, model_name: str, allow_unavailable: bool, check_accuracy: bool = True) -> Promotion:
    """Moves ``stable`` to the canary version of ``model_name`` under ``destination``; raises
    UserError naming the check that failed, changing nothing."""
    config_path = destination / tfs.MODELS_CONFIG
    with destination_lock(destination):
        if not config_path.is_file():
            raise UserError(f"no {config_path}: nothing has been pushed to {destination}")
        try:
            config = tfs.read_models_config(config_path)
        except Exception as err:  # text_format.ParseError names the line
            raise UserError(f"{config_path} does not parse as a ModelServerConfig: {err}") from None
        before = tfs.entry_named(config, model_name)
        if before is None:
            names = [e.name for e in tfs.entries_of(config)]
            raise UserError(f"model {model_name!r} is not in {config_path} (models: {', '.join(names) or 'none'})")
        canary = before.labels.get(tfs.CANARY)
        if canary is None:
            raise UserError(
                f"model {model_name!r} has no canary version to promote (labels: {dict(before.labels) or 'none'}); "
                "push with push.canary: true first"
            )
        base = destination / model_name
        on_disk = versions(base)
        if canary not in on_disk:
            raise UserError(f"the canary version {canary} is not on disk under {base}")
        canary_record = read_record(base / str(canary)) or {}
        infra = canary_record.get("infra", {})
        if infra.get("status") != InfraBlessing.BLESSED:
            why = infra.get("reason") or "no infra validation recorded with it"
            raise UserError(f"the canary version {canary} is not infra-blessed ({why}); it cannot become stable")
        stable = before.labels.get(tfs.STABLE)
        stable_record = (read_record(base / str(stable)) or {}) if stable in on_disk else {}
        accuracies = {v: r.get("accuracy") for v, r in ((stable, stable_record), (canary, canary_record)) if v}
        canary_accuracy = accuracies.get(canary)
        stable_accuracy = accuracies.get(stable) if stable is not None else None
        if check_accuracy and canary_accuracy is not None and stable_accuracy is not None:
            if canary_accuracy < stable_accuracy:
                raise UserError(
                    f"the canary version {canary} scored accuracy {canary_accuracy:.4f} < the stable version "
                    f"{stable}'s {stable_accuracy:.4f} (on the {canary_record.get('split', '?')} / "
                    f"{stable_record.get('split', '?')} split); pass --skip-accuracy-check to promote it anyway"
                )
        after = rollout.entry_after_promote(before)
        new_config = tfs.replace_entry(config, after)
        available = before.served(on_disk)
        problems = tfs.check_models_config(
            new_config, {model_name: on_disk}, {model_name: available}, allow_unavailable
        )
        problems += tfs.check_label_moves(before, after, available, allow_unavailable)
        if problems:
            raise UserError(f"the promoted models.config would not be accepted by TF Serving: {'; '.join(problems)}")
        tfs.write_text_proto(config_path, new_config)
    return Promotion(model_name, config_path, before, after, accuracies)
