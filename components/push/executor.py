"""push executor: publishes the SavedModel as version N+1 for TF Serving, once infra-validated.

``push_version`` stages the version (SavedModel + warmup requests) in a hidden folder beside
the base path and the new ``models.config`` / ``batching.config`` in another, runs infra
validation on exactly those files, and only then renames the version into place, then the
config files (so a config never names a version that is not on disk yet), then deletes old
versions no label needs. A version that is not infra-blessed leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

from visionpipe.components.push import rollout
from visionpipe.components.push.config import PushConfig
from visionpipe.components.push.spec import Inputs, Outputs, Params
from visionpipe.components.push.versions import (
    destination_lock,
    next_version,
    prune,
    publish,
    remove_stale_staging,
    staging_dir,
    versions,
    write_record,
)
from visionpipe.pipeline.artifacts import ExportedModel, InfraBlessing
from visionpipe.pipeline.errors import GateError
from visionpipe.pipeline.stage import StageContext
from visionpipe.serving import infra_validation
from visionpipe.serving import tf_serving_config as tfs
from visionpipe.serving.predict import find_saved_model
from visionpipe.serving.warmup import warmup_images, warmup_split, write_warmup


class InfraNotBlessed(GateError):
    """Infra validation failed: nothing was pushed. ``verdict`` holds every check."""

    def __init__(self, verdict: infra_validation.InfraVerdict):
        super().__init__(f"infra validation failed ({verdict.reason}); nothing was pushed")
        self.verdict = verdict


@dataclasses.dataclass
class PushResult:
    version: int
    base: Path
    entry: tfs.ModelEntry
    note: str  # what changed for the labels
    verdict: infra_validation.InfraVerdict
    pruned: list[int]


@dataclasses.dataclass
class _Rollout:
    """Where the new version goes and what the models config will say of it, decided before
    anything is staged."""

    base: Path  # destination/name
    version: int
    on_disk: list[int]  # the versions there before this push
    previous: Any  # the ModelServerConfig in destination now, or None
    before: tfs.ModelEntry | None  # this model's entry in it
    server_base: str  # base_path as the server sees it
    entry: tfs.ModelEntry  # the entry after the push
    note: str


def push_version(
    source: Path,
    destination: Path,
    name: str,
    images: list[bytes],
    push: PushConfig,
    record: dict[str, Any],
) -> PushResult:
    """Publishes SavedModel ``source`` as the next version of ``name`` under ``destination``,
    with ``images`` as warmup requests; ``record`` (e.g. accuracy) is kept with the version.
    Raises InfraNotBlessed when the staged version would not serve. Hold ``destination_lock``."""
    plan = _plan_rollout(destination, name, push)
    staged = staging_dir(plan.base, plan.version)
    configs = staging_dir(destination, plan.version)
    try:
        shutil.copytree(source, staged)
        write_warmup(staged, name, images)
        batching = _stage_configs(configs, plan, push)
        verdict = _validate_staged(staged, configs, batching, name, plan, push, len(images))
        if not verdict.blessed:
            raise InfraNotBlessed(verdict)
        write_record(staged, {**record, "version": plan.version, "infra": infra_record(verdict)})
        _go_live(staged, configs, destination, plan, batching)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # gone already once published
        shutil.rmtree(configs, ignore_errors=True)
    protected = {plan.version, *plan.entry.labels.values(), *(plan.entry.versions or ())}
    pruned = prune(plan.base, push.keep_versions, protected)
    return PushResult(plan.version, plan.base, plan.entry, plan.note, verdict, pruned)


def _plan_rollout(destination: Path, name: str, push: PushConfig) -> _Rollout:
    """The next version number and the model's config entry after the push (canary rules in
    ``rollout.py``), after clearing what an interrupted push left behind."""
    base = destination / name
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(base)
    remove_stale_staging(destination)
    on_disk = versions(base)
    version = next_version(base)
    config_path = destination / tfs.MODELS_CONFIG
    try:
        previous = tfs.read_models_config(config_path) if config_path.is_file() else None
    except Exception as err:
        raise GateError(f"{config_path} does not parse ({err}); fix or remove it, then push again") from None
    before = tfs.entry_named(previous, name)
    server_base = f"{push.server_root.rstrip('/')}/{name}" if push.server_root else str(base.resolve())
    entry, note = rollout.entry_after_push(before, name, server_base, on_disk, version, push.canary)
    return _Rollout(base, version, on_disk, previous, before, server_base, entry, note)


def _stage_configs(configs: Path, plan: _Rollout, push: PushConfig) -> Path | None:
    """Writes the new models config (and batching config, when on) into ``configs``; returns
    the batching file, or None."""
    configs.mkdir()
    tfs.write_text_proto(configs / tfs.MODELS_CONFIG, tfs.replace_entry(plan.previous, plan.entry))
    if not push.batching.enabled:
        return None
    b = push.batching
    batching = configs / tfs.BATCHING_CONFIG
    params = tfs.batching_parameters(
        b.max_batch_size, b.batch_timeout_micros, b.num_batch_threads, b.max_enqueued_batches, b.allowed_batch_sizes
    )
    tfs.write_text_proto(batching, params)
    return batching


def _validate_staged(
    staged: Path, configs: Path, batching: Path | None, name: str, plan: _Rollout, push: PushConfig, warmups: int
) -> infra_validation.InfraVerdict:
    """Infra validation of exactly the staged version and config files."""
    current = plan.before or tfs.ModelEntry(name, plan.server_base)
    return infra_validation.validate(
        infra_validation.Staged(
            version_dir=staged,
            version=plan.version,
            model_name=name,
            models_config=configs / tfs.MODELS_CONFIG,
            batching_config=batching,
            on_disk={name: [*plan.on_disk, plan.version]},
            available={name: current.served(plan.on_disk)},
            before=plan.before,
            warmup_records=warmups,
        ),
        allow_unavailable=push.allow_labels_for_unavailable_versions,
        timeout=push.infra_timeout_seconds,
        real_server=push.real_server_check,
    )


def _go_live(staged: Path, configs: Path, destination: Path, plan: _Rollout, batching: Path | None) -> None:
    """The version first, then the config files, so a config never names a version that is not
    on disk yet."""
    publish(staged, plan.base, plan.version)
    for config_file in configs.iterdir():
        os.replace(config_file, destination / config_file.name)
    if batching is None:  # serve.sh turns batching on when the file is there
        (destination / tfs.BATCHING_CONFIG).unlink(missing_ok=True)


def infra_record(verdict: infra_validation.InfraVerdict) -> dict[str, Any]:
    status = InfraBlessing.BLESSED if verdict.blessed else InfraBlessing.NOT_BLESSED
    checks = [check.as_dict() for check in verdict.checks]
    return {"status": status, "blessed": verdict.blessed, "reason": verdict.reason, "checks": checks}


def write_infra_blessing(directory: Path, verdict: infra_validation.InfraVerdict) -> dict[str, Any]:
    """``infra_blessing.json`` and TFX's marker file into ``directory``; returns the record."""
    directory.mkdir(parents=True, exist_ok=True)
    record = infra_record(verdict)
    (directory / InfraBlessing.FILE).write_text(json.dumps(record, indent=2))
    (directory / record["status"]).touch()
    return record


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    exported = inputs.exported_model
    name = exported.model_name
    failed = exported.failed_gates
    if exported.saved_model_failure is not None:
        raise GateError(f"the SavedModel failed its export gate ({exported.saved_model_failure}); nothing is pushed")
    source = find_saved_model(exported.serving_dir)
    destination = Path(params.destination)
    images = warmup_images(inputs.examples, params.push.warmup_requests)
    ctx.log(f"warmup: {len(images)} requests from the {warmup_split(inputs.examples)} split")
    record = {
        "model_name": name,
        "source": str(source),
        "pushed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "accuracy": inputs.evaluation.accuracy,
        "split": inputs.evaluation.split,
    }
    try:
        with destination_lock(destination):
            result = push_version(source, destination, name, images, params.push, record)
            mobile_dir = _push_tflite(exported, failed, destination / f"{name}_tflite", result)
    except InfraNotBlessed as err:
        # The run registers nothing for a failed stage: the verdict stays in the scratch folder.
        write_infra_blessing(ctx.scratch_dir, err.verdict)
        raise GateError(f"{err} (every check: {ctx.scratch_dir / InfraBlessing.FILE})") from None
    for check in result.verdict.checks:
        ctx.log(f"infra {check.outcome}: {check.name}: {check.detail}")
    for artifact, check in failed.items():
        ctx.log(f"not pushed: {artifact} ({check})")
    outputs.infra_blessing.properties.update(write_infra_blessing(outputs.infra_blessing.path, result.verdict))
    pushed = {
        "model_base_path": str(result.base),
        "version": result.version,
        "labels": dict(result.entry.labels),
        "models_config": str(destination / tfs.MODELS_CONFIG),
        "warmup_requests": len(images),
        "pruned": result.pruned,
        "source": str(source),
        "tflite": str(mobile_dir) if mobile_dir else "",
        "not_pushed": {artifact: check.as_dict() for artifact, check in failed.items()},
    }
    (outputs.pushed_model.path / outputs.pushed_model.FILE).write_text(json.dumps(pushed, indent=2))
    outputs.pushed_model.properties.update(pushed)
    if result.pruned:
        ctx.log(f"deleted old versions {result.pruned} (push.keep_versions {params.push.keep_versions})")
    ctx.log(
        f"pushed version {result.version} to {result.base}: {result.note}; serve it with "
        f"serving/deploy/serve.sh {destination}"
    )
    return {"version": result.version, "model_base_path": str(result.base), "labels": dict(result.entry.labels)}


def _push_tflite(exported, failed: dict, root: Path, result: PushResult) -> Path | None:
    """The phone and edge files that passed their gates, beside the serving versions and
    numbered alike (pruned alike too), staged and published as the serving versions are.
    Hold ``destination_lock``."""
    remove_stale_staging(root)
    for version in result.pruned:
        shutil.rmtree(root / str(version), ignore_errors=True)
    mobile = {k: path for k, path in exported.tflite_files.items() if k not in failed}
    if not mobile:
        return None
    staged = staging_dir(root, result.version)
    staged.mkdir(parents=True)
    for extra in (ExportedModel.LABELS, ExportedModel.PREPROCESSING, *(path.name for path in mobile.values())):
        shutil.copy(exported.tflite_dir / extra, staged / extra)
    return publish(staged, root, result.version)
