"""validate executor: a Beam pipeline computes per-split statistics, then schema and anomalies.

Writes ``stats.pb`` + ``summary.json`` (Statistics), ``schema.pbtxt`` (Schema) and
``anomalies.pbtxt`` + ``anomalies.json`` + ``report.md`` (Anomalies). Blocking anomalies do
not fail this stage, whose outputs are the report; they stop the pipeline at train's gate.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf import text_format

from components.validate import anomalies as checks
from components.validate import stats
from components.validate.spec import Inputs, Outputs, Params
from pipeline.errors import DataError
from pipeline.stage import StageContext


def compute_split_stats(examples_dir: Path, work_dir: Path, splits: list[str], channels: int,
                        beam_args: list[str]) -> dict[str, dict]:
    """One Beam pipeline over all splits; the small per-split results go through ``work_dir``."""
    results: dict[str, dict] = {}
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    for split in splits:
        pattern = str(examples_dir / split / "data-*")
        (pipeline
         | f"Read_{split}" >> beam.io.ReadFromTFRecord(pattern)
         | f"Parse_{split}" >> beam.Map(stats.parse)
         | f"Stats_{split}" >> beam.CombineGlobally(stats.ImageStatsFn(channels, with_pixels=split == "train"))
         | f"Collect_{split}" >> beam.Map(lambda s, split=split: (split, s))
         | f"Json_{split}" >> beam.Map(json.dumps)
         | f"Write_{split}" >> beam.io.WriteToText(str(work_dir / split),
                                                    shard_name_template=""))
    pipeline.run().wait_until_finish()
    for split in splits:
        name, value = json.loads((work_dir / split).read_text())
        results[name] = value
    return results


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    examples = inputs.examples.path
    classes_info = json.loads((examples / "classes.json").read_text())
    quarantine = [json.loads(line) for line in (examples / "quarantine.jsonl").read_text().splitlines() if line]
    splits = inputs.examples.properties["split_names"]
    ctx.log(f"computing statistics for splits {', '.join(splits)}")
    split_stats = compute_split_stats(examples, ctx.scratch_dir, splits, params.channels, ctx.beam_args)

    reviewed = None
    if params.validate.schema_path:
        path = Path(params.validate.schema_path)
        if not path.is_file():
            raise DataError(f"validate.schema_path {str(path)!r} does not exist")
        reviewed = checks.load_schema(path)
    found = checks.find_anomalies(classes_info["classes"], classes_info["empty_classes"], quarantine,
                                  split_stats, reviewed, params.validate)

    (outputs.statistics.path / "stats.pb").write_bytes(stats.to_proto(split_stats).SerializeToString())
    (outputs.statistics.path / "summary.json").write_text(json.dumps(split_stats, indent=2))
    schema = checks.infer_schema(classes_info["classes"], split_stats)
    (outputs.schema.path / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    (outputs.anomalies.path / "anomalies.pbtxt").write_text(text_format.MessageToString(checks.to_proto(found)))
    (outputs.anomalies.path / "anomalies.json").write_text(
        json.dumps([dataclasses.asdict(a) for a in found], indent=2))
    report = checks.report(found, split_stats, params.validate.max_listed_files)
    (outputs.anomalies.path / "report.md").write_text(report)

    blocking = sorted({a.kind for a in found if a.severity == "block"})
    outputs.anomalies.properties.update(blocking=blocking, warnings=sorted({a.kind for a in found} - set(blocking)))
    train = split_stats.get("train", {})
    outputs.statistics.properties.update(pixel_mean=train.get("pixel_mean"), pixel_std=train.get("pixel_std"),
                                         counts={s: v["count"] for s, v in split_stats.items()})
    outputs.schema.properties.update(classes=classes_info["classes"])
    for a in found:
        ctx.log(f"{'BLOCKING' if a.severity == 'block' else 'warning'} {a.kind}: {len(a.items)} "
                f"({', '.join(a.items[:3])}{', ...' if len(a.items) > 3 else ''})")
    if blocking:
        print(report, flush=True)
    return {"anomalies": len(found), "blocking": len(blocking),
            **{f"{s}_images": v["count"] for s, v in split_stats.items()}}
