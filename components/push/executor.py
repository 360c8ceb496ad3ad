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
from visionpipe.pipeline.stage import StageContext


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    name = inputs.exported_model.model_name
    source_versions = inputs.exported_model.path / "serving" / name
    source = max(source_versions.iterdir(), key=lambda p: int(p.name))
    base = Path(params.destination) / name
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    shutil.copytree(source, tmp)
    os.replace(tmp, base / str(version))
    record = {"model_base_path": str(base), "version": version, "source": str(source)}
    (outputs.pushed_model.path / "push.json").write_text(json.dumps(record, indent=2))
    outputs.pushed_model.properties.update(record)
    ctx.log(f"pushed version {version} to {base} (serve it with TF Serving --model_base_path={base})")
    return {"version": version, "model_base_path": str(base)}
