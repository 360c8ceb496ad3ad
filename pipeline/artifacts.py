"""Typed artifacts: what stages consume and produce.

An artifact is a directory (``uri``) plus JSON ``properties``. Its type says what the
directory holds; each stage's spec declares its inputs and outputs with these types, and the
runner resolves a stage's inputs by type from the artifacts upstream stages produced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar


@dataclasses.dataclass
class Artifact:
    uri: str
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""
    id: int | None = None

    TYPE: ClassVar[str] = "Artifact"

    @property
    def path(self) -> Path:
        return Path(self.uri)

    def __repr__(self) -> str:
        return f"{self.TYPE}(id={self.id}, uri={self.uri!r})"


class Examples(Artifact):
    """Sharded TFRecords of tf.train.Example per split (``<split>/data-*.tfrecord``),
    ``classes.json`` and ``quarantine.jsonl`` (files that could not be ingested, with reasons)."""

    TYPE = "Examples"
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test")  # the one list of split names

    @property
    def classes(self) -> list[str]:
        return self.properties["classes"]

    @property
    def split_counts(self) -> dict[str, int]:
        return {split: self.properties.get(f"{split}_images", 0) for split in self.SPLITS}

    @property
    def evaluation_split(self) -> str | None:
        """The split models are scored on: test, or val when there is no test split."""
        counts = self.split_counts
        return next((split for split in ("test", "val") if counts[split]), None)


class Statistics(Artifact):
    """``stats.pb`` (tensorflow_metadata DatasetFeatureStatisticsList) and ``summary.json``."""

    TYPE = "Statistics"


class Schema(Artifact):
    """``schema.pbtxt``: tensorflow_metadata Schema text proto (classes, channels, size range)."""

    TYPE = "Schema"


class Anomalies(Artifact):
    """``anomalies.pbtxt`` (tensorflow_metadata Anomalies), ``anomalies.json`` and ``report.md``."""

    TYPE = "Anomalies"


class Model(Artifact):
    """A trained Keras model (``model.keras``), its ``preprocessing.json``, ``classes.json``,
    training ``history.json`` and TensorBoard ``logs/``."""

    TYPE = "Model"


class Evaluation(Artifact):
    """``metrics.json``: accuracy, top-k, per-class precision/recall/F1, confusion matrix."""

    TYPE = "Evaluation"


class Blessing(Artifact):
    """``blessing.json``: whether the model passed every threshold, and the reasons."""

    TYPE = "Blessing"


class ExportedModel(Artifact):
    """``serving/<name>/<version>/`` SavedModel laid out for TF Serving, ``tflite/*.tflite``,
    and ``accuracy.json`` comparing each runtime's test accuracy with the Keras model's."""

    TYPE = "ExportedModel"


class PushedModel(Artifact):
    """Where the blessed model was pushed: a TF Serving model base path and version."""

    TYPE = "PushedModel"


ALL_TYPES: dict[str, type[Artifact]] = {
    cls.TYPE: cls
    for cls in (Examples, Statistics, Schema, Anomalies, Model, Evaluation, Blessing, ExportedModel, PushedModel)
}
