"""validate executor: statistics protos, schema and anomalies from what ingest measured.

Ingest's Beam pipeline measures every image while it decodes it and combines the per-split
statistics (``split_stats.json``); this stage turns them into TFDV-compatible protos, infers
the schema, checks anomalies (against the reviewed schema and the previous data version) and
writes the reports.

Writes ``stats.pb`` + ``summary.json`` (Statistics), ``schema.pbtxt`` (Schema) and
``anomalies.pbtxt`` + ``anomalies.json`` + ``report.md`` + ``report.html`` (Anomalies).
Blocking anomalies do not fail this stage, whose outputs are the report; they stop the
pipeline at train's gate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from google.protobuf import text_format

from visionpipe.components.validate import anomalies as checks
from visionpipe.components.validate import summary
from visionpipe.components.validate.spec import Inputs, Outputs, Params, reviewed_schema_path
from visionpipe.data.image_stats import to_proto as stats_proto
from visionpipe.pipeline.artifacts import Examples, Statistics
from visionpipe.pipeline.errors import DataError
from visionpipe.pipeline.stage import StageContext


def _baseline(inputs: Inputs, params: Params, ctx: StageContext) -> dict | None:
    """The previous data version's statistics, unless this data version was accepted as reviewed."""
    accepted = Path(params.accepted_dir) / "accepted.json"
    if accepted.is_file() and json.loads(accepted.read_text()).get("examples") == inputs.examples.fingerprint:
        ctx.log("this data version was accepted with `visionpipe schema --accept`: drift is not re-checked")
        return None
    if inputs.previous is None:
        return None
    return json.loads((inputs.previous.path / Statistics.SUMMARY).read_text())


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    examples = inputs.examples.path
    classes_info = json.loads((examples / Examples.CLASSES).read_text())
    plan = json.loads((examples / Examples.PLAN).read_text())
    quarantine = [json.loads(line) for line in (examples / Examples.QUARANTINE).read_text().splitlines() if line]
    split_stats = json.loads((examples / Examples.SPLIT_STATS).read_text())
    for split, stats_of_split in split_stats.items():
        stats_of_split["duplicates"] = sum(len(group) for s, group in plan["duplicates_in_split"] if s == split)

    schema_path = reviewed_schema_path(params)
    if schema_path is not None and not schema_path.is_file():
        raise DataError(f"validate.schema_path {str(schema_path)!r} does not exist")
    findings = checks.Findings(
        classes=classes_info["classes"],
        empty_classes=classes_info["empty_classes"],
        quarantine=quarantine,
        plan=plan,
        split_stats=split_stats,
        reviewed_schema=checks.load_schema(schema_path) if schema_path else None,
        baseline=_baseline(inputs, params, ctx),
    )
    found = checks.find_anomalies(findings, params.validate)

    (outputs.statistics.path / "stats.pb").write_bytes(stats_proto(split_stats).SerializeToString())
    (outputs.statistics.path / Statistics.SUMMARY).write_text(json.dumps(split_stats, indent=2))
    schema = checks.infer_schema(classes_info["classes"], split_stats, params.validate)
    (outputs.schema.path / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    (outputs.anomalies.path / "anomalies.pbtxt").write_text(text_format.MessageToString(checks.to_proto(found)))
    as_dicts = [dataclasses.asdict(a) for a in found]
    (outputs.anomalies.path / "anomalies.json").write_text(json.dumps(as_dicts, indent=2))
    report = checks.report(found, split_stats, params.validate.max_listed_files)
    (outputs.anomalies.path / "report.md").write_text(report)
    (outputs.anomalies.path / "report.html").write_text(summary.render_html(split_stats, as_dicts))

    blocking = sorted({a.kind for a in found if a.severity == "block"})
    outputs.anomalies.properties.update(blocking=blocking, warnings=sorted({a.kind for a in found} - set(blocking)))
    train = split_stats.get("train", {})
    outputs.statistics.properties.update(
        pixel_mean=train.get("pixel_mean"),
        pixel_std=train.get("pixel_std"),
        class_counts=train.get("classes", {}),
        counts={s: v["count"] for s, v in split_stats.items()},
    )
    outputs.schema.properties.update(classes=classes_info["classes"])
    for a in found:
        ctx.log(
            f"{'BLOCKING' if a.severity == 'block' else 'warning'} {a.kind}: {len(a.items)} "
            f"({', '.join(a.items[:3])}{', ...' if len(a.items) > 3 else ''})"
        )
    if blocking:
        ctx.log(
            f"blocking anomalies stop the pipeline before training; the report: {outputs.anomalies.path / 'report.md'}"
        )
    return {
        "anomalies": len(found),
        "blocking": len(blocking),
        **{f"{s}_images": v["count"] for s, v in split_stats.items()},
    }
