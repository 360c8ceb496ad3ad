"""push executor: publishes the SavedModel as version N+1 under the serving destination.

The copy goes to a hidden temp folder first and is renamed into place, so TF Serving (which
polls the base path) never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from visionpipe.components.push.spec import Inputs, Outputs, Params
from visionpipe.pipeline.errors import GateError
from visionpipe.pipeline.stage import StageContext


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    exported = inputs.exported_model
    name = exported.model_name
    failed = exported.properties.get("failed_gates", {})
    if "saved_model" in failed:
        raise GateError(f"the SavedModel failed its export gate ({failed['saved_model']}); nothing is pushed")
    source_versions = exported.path / "serving" / name
    source = max(source_versions.iterdir(), key=lambda p: int(p.name))
    base = Path(params.destination) / name
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    shutil.copytree(source, tmp)
    os.replace(tmp, base / str(version))
    # Phone and edge files that passed their gates, beside the serving versions.
    mobile = {k: v for k, v in exported.properties.get("tflite_files", {}).items() if k not in failed}
    mobile_dir = Path(params.destination) / f"{name}_tflite" / str(version)
    if mobile:
        tmp = mobile_dir.parent / f".tmp-{version}-{os.getpid()}"
        tmp.mkdir(parents=True)
        for extra in ("labels.txt", "preprocessing.json", *(Path(p).name for p in mobile.values())):
            shutil.copy(exported.path / "tflite" / extra, tmp / extra)
        os.replace(tmp, mobile_dir)
    for artifact, reason in failed.items():
        ctx.log(f"not pushed: {artifact} ({reason})")
    record = {
        "model_base_path": str(base),
        "version": version,
        "source": str(source),
        "tflite": str(mobile_dir) if mobile else "",
        "not_pushed": failed,
    }
    (outputs.pushed_model.path / "push.json").write_text(json.dumps(record, indent=2))
    outputs.pushed_model.properties.update(record)
    ctx.log(f"pushed version {version} to {base} (serve it with TF Serving --model_base_path={base})")
    return {"version": version, "model_base_path": str(base)}
