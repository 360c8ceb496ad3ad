"""Schema inference and anomaly checks, written as tensorflow_metadata protos and a report.

Each anomaly has a kind (the key in ``validate.severity``), a severity (block or warn), a
message, and the offending files or classes, so the report says exactly what to fix.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from google.protobuf import text_format

from pipeline.config import ValidateConfig


@dataclasses.dataclass
class Anomaly:
    kind: str
    severity: str  # block | warn
    message: str
    items: list[str] = dataclasses.field(default_factory=list)  # offending files or classes


def infer_schema(classes: list[str], split_stats: dict[str, dict]):
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    label = schema.feature.add(name="label", type=schema_pb2.BYTES)
    label.string_domain.name = "label"
    label.string_domain.value.extend(classes)
    present = [s for s in split_stats.values() if s["count"]]
    channels = [int(c) for s in present for c in s["channels"]]
    for name, values in (("channels", channels),
                         ("height", [s["height"][k] for s in present for k in ("min", "max")]),
                         ("width", [s["width"][k] for s in present for k in ("min", "max")])):
        feature = schema.feature.add(name=name, type=schema_pb2.INT)
        if values:
            feature.int_domain.min, feature.int_domain.max = int(min(values)), int(max(values))
    return schema


def schema_classes(schema) -> list[str]:
    return next((list(f.string_domain.value) for f in schema.feature if f.name == "label"), [])


def load_schema(path: Path):
    from tensorflow_metadata.proto.v0 import schema_pb2
    return text_format.Parse(path.read_text(), schema_pb2.Schema())


def find_anomalies(classes: list[str], empty_classes: list[str], quarantine: list[dict],
                   split_stats: dict[str, dict], reviewed_schema, config: ValidateConfig) -> list[Anomaly]:
    severity = config.severity
    found: list[Anomaly] = []

    def add(kind: str, message: str, items: list[str]) -> None:
        if items:
            found.append(Anomaly(kind, getattr(severity, kind), message, items))

    add("empty_class", "class folders with no images; add images or remove the folder", empty_classes)
    add("undecodable_image", "files that could not be ingested (see reason); fix or remove them",
        [f"{q['path']}: {q['reason']}" for q in quarantine])
    for split, stats in split_stats.items():
        if stats["count"] == 0:
            add("class_missing_from_split", f"the {split} split is empty; add images or adjust data.split",
                [split])
            continue
        add("class_missing_from_split", f"classes with no images in the {split} split; add images "
            "to these classes (each needs at least 3 for train/val/test)",
            [c for c in classes if stats["classes"].get(c, 0) == 0])
    if reviewed_schema is not None:
        expected = schema_classes(reviewed_schema)
        add("class_missing_vs_schema", "classes in the reviewed schema (validate.schema_path) that the "
            "data no longer has", [c for c in expected if c not in classes])
        add("new_class_vs_schema", "classes the reviewed schema (validate.schema_path) does not know; "
            "review them and update the schema", [c for c in classes if c not in expected])
    return found


def to_proto(anomalies: list[Anomaly]):
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    kinds = {"empty_class": "FEATURE_TYPE_LOW_NUMBER_PRESENT",
             "undecodable_image": "LOW_SUPPORTED_IMAGE_FRACTION",
             "class_missing_from_split": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
             "class_missing_vs_schema": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
             "new_class_vs_schema": "ENUM_TYPE_UNEXPECTED_STRING_VALUES"}
    proto = anomalies_pb2.Anomalies()
    proto.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    for anomaly in anomalies:
        feature = "image" if anomaly.kind == "undecodable_image" else "label"
        info = proto.anomaly_info[f"{feature}:{anomaly.kind}"]
        info.path.step.append(feature)
        info.severity = (anomalies_pb2.AnomalyInfo.ERROR if anomaly.severity == "block"
                         else anomalies_pb2.AnomalyInfo.WARNING)
        info.short_description = anomaly.kind
        info.description = f"{anomaly.message}: {', '.join(anomaly.items[:20])}"
        info.reason.add(type=anomalies_pb2.AnomalyInfo.Type.Value(kinds[anomaly.kind]),
                        short_description=anomaly.kind, description=anomaly.message)
    return proto


def report(anomalies: list[Anomaly], split_stats: dict[str, dict], max_listed: int) -> str:
    lines = ["# Data validation report", ""]
    lines += ["| split | images | classes | height min-max | width min-max | formats |",
              "|---|---|---|---|---|---|"]
    for split, s in split_stats.items():
        lines.append(f"| {split} | {s['count']} | {len(s['classes'])} | {s['height']['min']}-{s['height']['max']} "
                     f"| {s['width']['min']}-{s['width']['max']} | "
                     + ", ".join(f"{k}: {v}" for k, v in sorted(s["formats"].items())) + " |")
    lines.append("")
    if not anomalies:
        lines.append("No anomalies.")
    for a in anomalies:
        lines.append(f"## {'BLOCKING' if a.severity == 'block' else 'warning'}: {a.kind} ({len(a.items)})")
        lines.append(f"{a.message}. Set validate.severity.{a.kind}=warn to continue anyway.")
        lines += [f"- {item}" for item in a.items[:max_listed]]
        if len(a.items) > max_listed:
            lines.append(f"- ... and {len(a.items) - max_listed} more (all in anomalies.json)")
        lines.append("")
    return "\n".join(lines) + "\n"
