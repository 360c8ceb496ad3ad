"""Schema inference and anomaly checks, written as tensorflow_metadata protos and a report.

Each anomaly has a kind (its key in ``validate.severity``), a severity (block or warn), a
message, and the offending files, classes or splits, so the report says exactly what to fix.
Drift is measured against the previous data version's statistics (``baseline``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from google.protobuf import text_format

from visionpipe.components.validate.config import ValidateConfig
from visionpipe.data import label_sets
from visionpipe.data.drift import linf
from visionpipe.pipeline.artifacts import ABSENT, MISSING, TOO_SMALL, UNUSABLE

# Our anomaly kinds as TFDV's anomaly types, so TFDV/Facets users see familiar reasons.
_TFMD_TYPES = {
    "empty_class": "FEATURE_TYPE_LOW_NUMBER_PRESENT",
    "too_few_images": "FEATURE_TYPE_LOW_NUMBER_PRESENT",
    "undecodable_image": "LOW_SUPPORTED_IMAGE_FRACTION",
    "class_missing_from_split": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    "class_missing_vs_schema": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    "new_class_vs_schema": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    "conflicting_labels": "MULTIPLE_REASONS",
    "split_leakage": "FEATURE_TYPE_HIGH_UNIQUE",
    "duplicate_in_split": "FEATURE_TYPE_LOW_UNIQUE",
    "class_imbalance": "COMPARATOR_L_INFTY_HIGH",
    "label_drift": "COMPARATOR_L_INFTY_HIGH",
    "size_drift": "COMPARATOR_L_INFTY_HIGH",
    "channel_drift": "COMPARATOR_L_INFTY_HIGH",
}
_FEATURE = {
    "undecodable_image": "image",
    "split_leakage": "image",
    "duplicate_in_split": "image",
    "size_drift": "height",
    "channel_drift": "channels",
}


@dataclasses.dataclass
class Anomaly:
    kind: str
    severity: str  # block | warn
    message: str
    items: list[str] = dataclasses.field(default_factory=list)  # offending files, classes or splits


def infer_schema(classes: list[str], split_stats: dict[str, dict], config: ValidateConfig):
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    label = schema.feature.add(name="label", type=schema_pb2.BYTES)
    label.string_domain.name = "label"
    label.string_domain.value.extend(classes)
    label.drift_comparator.infinity_norm.threshold = config.drift.max_label_linf
    present = [s for s in split_stats.values() if s["count"]]
    channels = [int(c) for s in present for c in s["channels"]]
    for name, values in (
        ("channels", channels),
        ("height", [s["height"][k] for s in present for k in ("min", "max")]),
        ("width", [s["width"][k] for s in present for k in ("min", "max")]),
    ):
        feature = schema.feature.add(name=name, type=schema_pb2.INT)
        if values:
            feature.int_domain.min, feature.int_domain.max = int(min(values)), int(max(values))
    return schema


def schema_classes(schema) -> list[str]:
    return next((list(f.string_domain.value) for f in schema.feature if f.name == "label"), [])


def load_schema(path: Path):
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(path.read_text(), schema_pb2.Schema())


@dataclasses.dataclass
class Findings:
    """What ingest and validate know about the data, for the checks below."""

    classes: list[str]
    empty_classes: list[str]
    quarantine: list[dict]
    plan: dict  # ingest's plan.json: duplicates_in_split, leakage, conflicting_labels
    split_stats: dict[str, dict]
    reviewed_schema: object | None = None
    baseline: dict[str, dict] | None = None  # split statistics of the previous data version


def find_anomalies(f: Findings, config: ValidateConfig) -> list[Anomaly]:
    """Every check's anomalies, in a fixed order (the report lists them so); a check that finds no
    items adds none. Each group of checks below calls ``add`` with its kinds."""
    found: list[Anomaly] = []

    def add(kind: str, message: str, items: list[str]) -> None:
        if items:
            found.append(Anomaly(kind, getattr(config.severity, kind), message, items))

    _ingest_findings(f, add)
    _empty_splits(f, add)
    _class_counts(f, config, add)
    if f.reviewed_schema is not None:
        _schema_changes(f.classes, schema_classes(f.reviewed_schema), add)
    if f.baseline:
        _drift(f.split_stats, f.baseline, config, add)
    return found


def _ingest_findings(f: Findings, add) -> None:
    """What ingest found while reading: empty class folders, unusable items, label conflicts,
    leakage between splits and duplicates within one."""
    add("empty_class", "class folders with no images; add images or remove the folder", f.empty_classes)
    add(
        "undecodable_image",
        "items that could not be ingested (see reason); fix or remove them",
        [f"{q['path']}: {q['reason']}" for q in f.quarantine if q.get("anomaly", UNUSABLE) == UNUSABLE],
    )
    add(
        "conflicting_labels",
        "the same image content is filed under different classes; every copy was quarantined (it cannot be "
        "trusted in either class): keep it in one class folder",
        f.plan["conflicting_labels"],
    )
    add(
        "split_leakage", "identical images were given in two splits; each was kept in one split only", f.plan["leakage"]
    )
    add(
        "duplicate_in_split",
        "identical images within one split (each group listed); they weigh double in training and metrics",
        [f"{split}: {', '.join(group)}" for split, group in f.plan["duplicates_in_split"]],
    )


def _empty_splits(f: Findings, add) -> None:
    """Splits with no images at all, or classes missing from a split (absent on purpose is fine)."""
    origins = f.plan.get("origins", {})
    for split, stats in f.split_stats.items():
        if stats["count"] == 0 and origins.get(split) in (ABSENT, TOO_SMALL):
            continue  # deliberately: data.split.<split> is 0, or the data is too small for a test split
        if stats["count"] == 0:
            where = "the given layout has no such folder" if origins.get(split) == MISSING else "it is empty"
            add(
                "class_missing_from_split",
                f"the {split} split has no images ({where}); add images, or set data.split.{split}: 0 "
                "if it is meant to be absent",
                [split],
            )
            continue
        add(
            "class_missing_from_split",
            f"classes with no images in the {split} split; add images to these "
            "classes (each needs at least 3 for train/val/test)",
            [c for c in f.classes if stats["classes"].get(c, 0) == 0],
        )


def _class_counts(f: Findings, config: ValidateConfig, add) -> None:
    """Train classes too small to learn, and a train split too unbalanced."""
    minimum = config.min_train_images_per_class
    add(
        "too_few_images",
        f"classes with fewer train images than validate.min_train_images_per_class ({minimum}), too few to "
        "learn them; add images to each class folder (about as many as listed), or remove the class",
        _too_few(f.classes, f.split_stats, minimum),
    )
    add(
        "class_imbalance",
        f"the train split's largest class outnumbers its smallest by more than "
        f"validate.max_class_imbalance={config.max_class_imbalance:g}; collect more of the small classes, or "
        "if the classes you will meet are more balanced, set evaluate.prior_correction: true (single-label; "
        "fitted on val, no retraining) or train.class_balance: weights",
        _imbalance(f.split_stats.get("train"), config.max_class_imbalance),
    )


def _schema_changes(classes: list[str], expected: list[str], add) -> None:
    """The data's classes against the reviewed schema's, both ways."""
    add(
        "class_missing_vs_schema",
        "classes in the reviewed schema that the data no longer has",
        [c for c in expected if c not in classes],
    )
    add(
        "new_class_vs_schema",
        "classes the reviewed schema does not know; review them, then accept the "
        "new schema with `visionpipe schema --accept`",
        [c for c in classes if c not in expected],
    )


def _too_few(classes: list[str], split_stats: dict[str, dict], minimum: int) -> list[str]:
    """Classes with some, but fewer than ``minimum``, train images (none at all is
    class_missing_from_split), each with how many more images would give it enough."""
    found = []
    for name in classes:
        train = split_stats.get("train", {}).get("classes", {}).get(name, 0)
        total = sum(s["classes"].get(name, 0) for s in split_stats.values())
        if 0 < train < minimum:
            more = math.ceil(minimum * total / train) - total  # at the share of its images train gets now
            found.append(f"{name}: {train} train images ({total} in all); add about {more} more")
    return found


def _imbalance(train: dict | None, max_ratio: float) -> list[str]:
    counts = {c: n for c, n in (train or {}).get("classes", {}).items() if n > 0}
    if len(counts) < 2:
        return []
    big, small = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
    ratio = counts[big] / counts[small]
    return [f"{big} ({counts[big]}) / {small} ({counts[small]}) = {ratio:.1f}"] if ratio > max_ratio else []


def _drift(current: dict[str, dict], baseline: dict[str, dict], config: ValidateConfig, add) -> None:
    limits = config.drift
    labels, sizes, channels = [], [], []
    for split, now in current.items():
        before = baseline.get(split)
        if not before or not before["count"] or not now["count"]:
            continue
        distance, cls = linf(now["classes"], before["classes"])
        if distance > limits.max_label_linf:
            share = {k: s["classes"].get(cls, 0) / s["count"] for k, s in (("before", before), ("now", now))}
            labels.append(
                f"{split}: L-infinity {distance:.3f} > {limits.max_label_linf:g} (class {cls}: "
                f"{share['before']:.1%} -> {share['now']:.1%})"
            )
        for dim in ("height", "width"):
            old, new = before[dim]["mean"], now[dim]["mean"]
            if old and abs(new - old) / old > limits.max_size_change:
                sizes.append(f"{split}: mean {dim} {old:.1f} -> {new:.1f} px")
        distance, count = linf(now["channels"], before["channels"])
        if distance > limits.max_channel_linf:
            channels.append(
                f"{split}: L-infinity {distance:.3f} > {limits.max_channel_linf:g} "
                f"(images with {count} channels moved most)"
            )
    add(
        "label_drift",
        "the class distribution moved since the previous data version (limit: "
        "validate.drift.max_label_linf); check the new data, then accept it with `visionpipe schema --accept`",
        labels,
    )
    add(
        "size_drift",
        "image sizes changed since the previous data version (limit: validate.drift.max_size_change)",
        sizes,
    )
    add(
        "channel_drift",
        "the mix of gray/colour/alpha images changed since the previous data version "
        "(limit: validate.drift.max_channel_linf)",
        channels,
    )


def to_proto(anomalies: list[Anomaly]):
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    proto = anomalies_pb2.Anomalies()
    proto.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    for anomaly in anomalies:
        feature = _FEATURE.get(anomaly.kind, "label")
        info = proto.anomaly_info[f"{feature}:{anomaly.kind}"]
        info.path.step.append(feature)
        info.severity = (
            anomalies_pb2.AnomalyInfo.ERROR if anomaly.severity == "block" else anomalies_pb2.AnomalyInfo.WARNING
        )
        info.short_description = anomaly.kind
        info.description = f"{anomaly.message}: {', '.join(anomaly.items[:20])}"
        info.reason.add(
            type=anomalies_pb2.AnomalyInfo.Type.Value(_TFMD_TYPES[anomaly.kind]),
            short_description=anomaly.kind,
            description=anomaly.message,
        )
    return proto


def report(anomalies: list[Anomaly], split_stats: dict[str, dict], max_listed: int) -> str:
    lines = ["# Data validation report", ""]
    lines += ["| split | images | classes | height min-max | width min-max | formats |", "|---|---|---|---|---|---|"]
    for split, s in split_stats.items():
        lines.append(
            f"| {split} | {s['count']} | {len(s['classes'])} | {s['height']['min']}-{s['height']['max']} "
            f"| {s['width']['min']}-{s['width']['max']} | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(s["formats"].items()))
            + " |"
        )
    lines.append("")
    for split, s in split_stats.items():
        if "label_sets" in s:  # multi-label data
            top = list(s["cooccurrence"].items())[:5]
            pairs = ", ".join(f"{' + '.join(label_sets.decode(pair))} {n}" for pair, n in top)
            lines.append(
                f"- {split}: {s['labels_per_image']:.2f} labels per image, {s['unlabelled']} images with no label; "
                f"seen together most: {pairs or 'none'}"
            )
    lines.append("")
    if not anomalies:
        lines.append("No anomalies.")
    for a in anomalies:
        lines.append(f"## {'BLOCKING' if a.severity == 'block' else 'warning'}: {a.kind} ({len(a.items)})")
        if a.severity == "block":
            lines.append(
                f"{a.message}. This stops the pipeline; set validate.severity.{a.kind}=warn to continue anyway."
            )
        else:
            lines.append(f"{a.message}. A warning: the pipeline continues (validate.severity.{a.kind}=block stops it).")
        lines += [f"- {item}" for item in a.items[:max_listed]]
        if len(a.items) > max_listed:
            lines.append(f"- ... and {len(a.items) - max_listed} more (all in anomalies.json)")
        lines.append("")
    return "\n".join(lines) + "\n"
