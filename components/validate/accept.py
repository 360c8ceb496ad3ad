"""`visionpipe schema`: show the latest inferred schema against the accepted one, and accept it.

Accepting copies the latest validate run's ``schema.pbtxt`` to ``<run.root>/accepted/`` and
records which data version it came from. From then on validate checks classes against the
accepted schema (unless ``validate.schema_path`` names another one), and the accepted data
version's drift counts as reviewed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from visionpipe.components.validate.anomalies import load_schema, schema_classes
from visionpipe.components.validate.spec import accepted_dir
from visionpipe.pipeline.artifacts import Anomalies
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.metadata import MetadataStore


@dataclasses.dataclass
class SchemaReview:
    latest: Path  # the latest inferred schema.pbtxt
    accepted: Path  # where the accepted one lives (may not exist yet)
    added: list[str]  # classes in the latest schema that the accepted one lacks
    removed: list[str]  # classes in the accepted schema that the latest lacks
    blocking: list[str]  # blocking anomaly kinds of the latest validate run
    examples_fingerprint: str


def review(root: Path) -> SchemaReview:
    db = root / "metadata.sqlite"
    if not db.is_file():
        raise UserError(f"no runs under {root}; run the pipeline first (visionpipe run)")
    store = MetadataStore(db)
    try:
        latest = store.latest_outputs("validate")
        if latest is None:
            raise UserError(f"no validate stage has succeeded under {root}; run `visionpipe run --stage validate`")
        execution_id, outputs = latest
        examples = store.artifacts_of(execution_id, "input")["examples"]
    finally:
        store.close()
    schema_file = outputs["schema"].path / "schema.pbtxt"
    accepted = accepted_dir(root) / "schema.pbtxt"
    anomalies = outputs["anomalies"]
    if not isinstance(anomalies, Anomalies):  # validate declares its "anomalies" output as Anomalies
        raise TypeError(f"validate's anomalies output is {anomalies!r}, not Anomalies")
    new = schema_classes(load_schema(schema_file))
    old = schema_classes(load_schema(accepted)) if accepted.is_file() else []
    return SchemaReview(
        latest=schema_file,
        accepted=accepted,
        added=[c for c in new if c not in old],
        removed=[c for c in old if c not in new],
        blocking=anomalies.blocking,
        examples_fingerprint=examples.fingerprint,
    )


def accept(root: Path) -> SchemaReview:
    """Promotes the latest schema after a human reviewed it; written atomically."""
    result = review(root)
    folder = accepted_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".schema-{os.getpid()}.pbtxt"
    shutil.copyfile(result.latest, tmp)
    os.replace(tmp, result.accepted)
    record = {
        "examples": result.examples_fingerprint,
        "schema_from": str(result.latest),
        "accepted_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "blocking_when_accepted": result.blocking,
    }
    (folder / "accepted.json").write_text(json.dumps(record, indent=2))
    return result
