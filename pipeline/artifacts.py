"""Typed artifacts: what stages consume and produce.

An artifact is a directory (``uri``) plus JSON ``properties``. Its type says what the
directory holds and gives its properties names (``examples.classes``, ``blessing.blessed``)
so no stage reads another's string keys. Each type registers itself by ``TYPE`` when its
class is defined (``artifact_type`` finds it again when the metadata store loads one).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any, ClassVar

from visionpipe.pipeline.checks import Check, Outcome, read_check

_TYPES: dict[str, type[Artifact]] = {}


@dataclasses.dataclass
class Artifact:
    uri: str
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""
    id: int | None = None
    removed: bool = False  # its files were removed by `visionpipe gc` (the store keeps its record)

    TYPE: ClassVar[str] = "Artifact"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.TYPE in _TYPES:
            raise TypeError(f"artifact type {cls.TYPE!r} is defined twice")
        _TYPES[cls.TYPE] = cls

    @property
    def path(self) -> Path:
        return Path(self.uri)

    @property
    def available(self) -> bool:
        """Whether a stage may read it: not removed by gc, and its files are there."""
        return not self.removed and self.path.exists()

    def __repr__(self) -> str:
        return f"{self.TYPE}(id={self.id}, uri={self.uri!r})"


def artifact_type(name: str) -> type[Artifact]:
    return _TYPES[name]


# Where each split's images come from (``Examples.split_origins``: ingest's split plan writes
# them, validate and evaluate read them). ABSENT is a choice (a fraction of 0); MISSING is a gap
# (a given layout with no train images); TOO_SMALL is a test split not made because the data is
# too small for a useful one (rule 4 of components/ingest/split.py).
GIVEN, ASSIGNED, CARVED, ABSENT, MISSING = "given", "assigned", "carved", "absent", "missing"
TOO_SMALL = "too small"

# The anomaly kind (validate.severity.<kind>) that reports each kind of item ingest quarantines.
UNUSABLE, LEAKED, CONFLICTING = "undecodable_image", "split_leakage", "conflicting_labels"

# What a row of a curation file (data.exclude) does with the image it names: the next ingest
# reads them, and the data_quality stage prefills its findings.csv with them.
DROP, RELABEL, KEEP = "drop", "relabel", "keep"

# What one image's labels are (``Examples.multi_label``): one class, or a set of labels.
SINGLE_LABEL, MULTI_LABEL = "single_label", "multi_label"


class Examples(Artifact):
    """Sharded TFRecords of tf.train.Example per split (``<split>/data-*.tfrecord``),
    ``classes.json``, ``quarantine.jsonl`` (files that could not be ingested, with reasons) and
    ``curation.jsonl`` (images the user's curation files left out or relabelled, with reasons)."""

    TYPE = "Examples"
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test")  # the one list of split names
    SPLIT_STATS: ClassVar[str] = "split_stats.json"  # per-split statistics, measured while ingesting
    CLASSES: ClassVar[str] = "classes.json"  # the classes, the empty ones and images per split
    PLAN: ClassVar[str] = "plan.json"  # the split plan: origins, duplicates, leakage
    QUARANTINE: ClassVar[str] = "quarantine.jsonl"  # one line per file not ingested, with its reason
    CURATION: ClassVar[str] = "curation.jsonl"  # one line per image data.exclude/data.relabel acted on
    COUNTS: ClassVar[str] = "counts.json"  # examples written per split and TFRecord records read

    def class_counts(self, split: str) -> dict[str, int]:
        """Images per class in ``split`` (classes without images may be absent)."""
        stats = json.loads((self.path / self.SPLIT_STATS).read_text())
        return dict(stats.get(split, {}).get("classes", {}))

    @property
    def curation(self) -> dict[str, int]:
        """How many images data.exclude left out ("excluded") and data.relabel relabelled ("relabelled")."""
        return {key: int(self.properties.get(key, 0)) for key in ("excluded", "relabelled")}

    @property
    def split_origins(self) -> dict[str, str]:
        """Split -> how it was made (ingest.split: given, assigned, carved, absent, missing, too small)."""
        return self.properties.get("split_origins", {})

    @property
    def classes(self) -> list[str]:
        """The class names (multi-label: the label names), in id order."""
        return self.properties["classes"]

    @property
    def multi_label(self) -> bool:
        """Whether each image carries a set of labels (``data.labels``) rather than one class."""
        return self.properties.get("task") == MULTI_LABEL

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
    SUMMARY: ClassVar[str] = "summary.json"  # per split: count, classes, sizes, modes, channels, pixels

    def split_summary(self, split: str) -> dict[str, Any]:
        """What ingest measured on one split (``data/image_stats.py``); {} if empty."""
        return json.loads((self.path / self.SUMMARY).read_text()).get(split, {})

    @property
    def counts(self) -> dict[str, int]:
        """Images per split."""
        return self.properties["counts"]

    @property
    def class_counts(self) -> dict[str, int]:
        """Images per class in the train split."""
        return self.properties.get("class_counts") or {}

    @property
    def pixel_mean(self) -> list[float] | None:
        return self.properties.get("pixel_mean")

    @property
    def pixel_std(self) -> list[float] | None:
        return self.properties.get("pixel_std")


class Schema(Artifact):
    """``schema.pbtxt``: tensorflow_metadata Schema text proto (classes, channels, size range)."""

    TYPE = "Schema"


class Anomalies(Artifact):
    """``anomalies.pbtxt`` (tensorflow_metadata Anomalies), ``anomalies.json`` and ``report.md``."""

    TYPE = "Anomalies"
    REPORT: ClassVar[str] = "report.md"

    @property
    def blocking(self) -> list[str]:
        """The kinds of anomaly that stop the pipeline before training."""
        return self.properties.get("blocking", [])

    def blocking_reason(self) -> str | None:
        """Why the data may not be trained on, or None: the gate of train and tune."""
        if not self.blocking:
            return None
        return f"data validation found blocking anomalies ({', '.join(self.blocking)}); see {self.path / self.REPORT}"


class HyperParameters(Artifact):
    """``best_hyperparameters.txt`` (KerasTuner's ``HyperParameters.get_config()`` JSON, as TFX's
    Tuner writes it), ``trials.csv`` and ``objective.png`` of the search that found them."""

    TYPE = "HyperParameters"
    FILE: ClassVar[str] = "best_hyperparameters.txt"

    @property
    def values(self) -> dict[str, Any]:
        """Config key (dotted path) -> the value the search chose."""
        return self.properties.get("values", {})


class Model(Artifact):
    """A trained Keras model (``model.keras``), its ``preprocessing.json``, ``classes.json``,
    training ``history.json`` and TensorBoard ``logs/``."""

    TYPE = "Model"
    KERAS: ClassVar[str] = "model.keras"
    PREPROCESSING: ClassVar[str] = "preprocessing.json"  # models.preprocessing.PreprocessingSpec
    CLASSES: ClassVar[str] = "classes.json"  # class names in label-id order


class Evaluation(Artifact):
    """``metrics.json`` (accuracy with bootstrap intervals, top-k, per-class and averaged
    precision/recall/F1, ROC-AUC and PR-AUC, confusion matrix, calibration, slices,
    robustness, most-confused pairs, the error gallery, the served model's score),
    ``probabilities.npy``, ``confusion_matrix.csv`` and the figures as PNG files."""

    TYPE = "Evaluation"
    METRICS: ClassVar[str] = "metrics.json"
    CONFUSION_CSV: ClassVar[str] = "confusion_matrix.csv"
    CONFUSION_PNG: ClassVar[str] = "confusion_matrix.png"
    RELIABILITY: ClassVar[str] = "reliability.png"
    PER_CLASS: ClassVar[str] = "per_class.png"
    ROBUSTNESS: ClassVar[str] = "robustness.png"
    GALLERY: ClassVar[str] = "gallery.png"
    TRAINING_CURVES: ClassVar[str] = "training_curves.png"
    THRESHOLDS: ClassVar[str] = "thresholds.json"  # multi-label: each label's decision threshold and its rule

    @property
    def accuracy(self) -> float:
        """Single-label: the share of images whose top class is right; multi-label: the subset
        accuracy at the fitted thresholds (every label of an image right)."""
        return self.properties["accuracy"]

    def score(self, metric: str) -> float:
        """A headline figure: ``accuracy``, or (multi-label) ``map``, the mean average precision."""
        return float(self.properties[metric])

    @property
    def thresholds(self) -> list[float] | None:
        """Multi-label: each label's decision threshold, fitted on val, in label order; else None.
        Export ships them with the model."""
        found = self.properties.get("thresholds")
        return [float(t) for t in found] if found is not None else None

    @property
    def temperature(self) -> float:
        """Fitted on val by temperature scaling; export builds it into every served model."""
        return float(self.properties.get("temperature", 1.0))

    @property
    def logit_offsets(self) -> list[float] | None:
        """Single-label with ``evaluate.prior_correction``: what to add to each class's logit (after
        the temperature), fitted on val; export builds them into every served model. Else None."""
        found = self.properties.get("logit_offsets")
        return [float(o) for o in found] if found is not None else None

    @property
    def split(self) -> str:
        """The split the model was scored on."""
        return self.properties.get("split", "test")


class DataQuality(Artifact):
    """What the data_quality stage found with the trained model's embeddings: ``findings.json``
    (every finding with its file paths, the counts, what was checked and the cost),
    ``findings.csv`` (the same findings, one a row) and ``thumbnails/`` (PNG thumbnails of the
    images the run report shows)."""

    TYPE = "DataQuality"
    FINDINGS_JSON: ClassVar[str] = "findings.json"
    FINDINGS_CSV: ClassVar[str] = "findings.csv"
    THUMBNAILS: ClassVar[str] = "thumbnails"
    # The kinds of finding, in the order the report shows them (the one list of them).
    LABEL_ISSUE, LEAKAGE, DUPLICATE, OUTLIER = "label_issue", "near_duplicate_leakage", "near_duplicate", "outlier"
    KINDS: ClassVar[tuple[str, ...]] = (LABEL_ISSUE, LEAKAGE, DUPLICATE, OUTLIER)

    @property
    def counts(self) -> dict[str, int]:
        """Findings per kind (every kind, 0 when none; all 0 when the stage skipped)."""
        counts = self.properties.get("counts", {})
        return {kind: int(counts.get(kind, 0)) for kind in self.KINDS}

    @property
    def skipped(self) -> str:
        """Why nothing was checked (e.g. more images than data_quality.max_images), or ""."""
        return self.properties.get("skipped", "")

    @property
    def seconds(self) -> float:
        """What the checks cost, in seconds of wall time."""
        return float(self.properties.get("seconds", 0.0))

    @property
    def anomalies(self) -> list[dict[str, Any]]:
        """Anomalies of the validate kind the findings raise (near_duplicate_leakage), each with
        its ``severity`` ("block" or "warn") and ``description``."""
        return self.properties.get("anomalies", [])

    def blocking_reason(self) -> str | None:
        """Why the model may not be exported, or None: export's gate, with evaluate's."""
        blocking = [a for a in self.anomalies if a["severity"] == "block"]
        if not blocking:
            return None
        said = "; ".join(a["description"] for a in blocking)
        return f"the data_quality stage found blocking anomalies: {said}"

    def findings(self) -> list[dict[str, Any]]:
        """Every finding (``findings.json``), ranked within each kind."""
        return json.loads((self.path / self.FINDINGS_JSON).read_text())["findings"]


class Verdict(enum.Enum):
    """The gate's verdict on a model. Only BLESSED is exported and pushed without
    ``--override-gate``; INCONCLUSIVE means the evaluated split was too small to tell."""

    BLESSED = "BLESSED"
    NOT_BLESSED = "NOT BLESSED"
    INCONCLUSIVE = "INCONCLUSIVE"

    @classmethod
    def of(cls, outcome: Outcome) -> Verdict:
        """The verdict for the outcome of the gate's checks (``pipeline.checks.verdict``)."""
        verdicts = {
            Outcome.PASSED: cls.BLESSED,
            Outcome.FAILED: cls.NOT_BLESSED,
            Outcome.INCONCLUSIVE: cls.INCONCLUSIVE,
        }
        return verdicts[outcome]  # the rule gives no other outcome


class Blessing(Artifact):
    """``blessing.json``: the verdict, its reasons, and each check with its value, threshold
    and verdict."""

    TYPE = "Blessing"
    FILE: ClassVar[str] = "blessing.json"

    @property
    def verdict(self) -> Verdict:
        """The gate's verdict (a Blessing written before verdicts existed: from ``blessed``)."""
        if "verdict" in self.properties:
            return Verdict(self.properties["verdict"])
        return Verdict.BLESSED if self.properties.get("blessed") else Verdict.NOT_BLESSED

    @property
    def blessed(self) -> bool:
        return self.verdict is Verdict.BLESSED

    @property
    def reasons(self) -> list[str]:
        return self.properties.get("reasons", [])

    @staticmethod
    def checks_of(record: dict[str, Any]) -> list[Check]:
        """The checks of a ``blessing.json`` record (one written before ``Check`` records too)."""
        return [Check.from_dict(check) for check in record.get("checks", [])]

    def not_blessed_reason(self) -> str | None:
        """Why the model may not be exported or pushed, or None: the gate of export and push.
        Only a BLESSED model passes; INCONCLUSIVE (too few images to tell) is refused like NOT
        BLESSED, and ``--override-gate --reason`` ships either."""
        verdict = self.verdict
        if verdict is Verdict.BLESSED:
            return None
        reasons = "; ".join(self.reasons) or "no blessing recorded"
        if verdict is Verdict.INCONCLUSIVE:
            return f"the gate's verdict is INCONCLUSIVE (too few images to tell the model is good): {reasons}"
        return f"the model is not blessed: {reasons}"


class ExportedModel(Artifact):
    """``serving/<name>/<version>/`` SavedModel laid out for TF Serving, ``tflite/*.tflite``,
    and ``accuracy.json`` comparing each runtime's test accuracy with the Keras model's."""

    TYPE = "ExportedModel"
    SERVING: ClassVar[str] = "serving"  # serving/<model_name>/<version>/: the SavedModel for TF Serving
    TFLITE: ClassVar[str] = "tflite"  # the .tflite files, labels.txt and preprocessing.json
    SAVED_MODEL: ClassVar[str] = "saved_model"  # the SavedModel's name among the export targets
    LABELS: ClassVar[str] = "labels.txt"  # in tflite/: class names, one per line (TFLite metadata's too)
    PREPROCESSING: ClassVar[str] = Model.PREPROCESSING  # in tflite/: what the phone must feed the model
    # In tflite/ for a multi-label model: each label's decision threshold, in labels.txt's order
    # (a JSON list); a label is present when its probability is at least its threshold.
    THRESHOLDS: ClassVar[str] = "thresholds.json"
    TABLE: ClassVar[str] = "artifacts.json"  # every exported file's accuracy, size, latency and gate

    @property
    def model_name(self) -> str:
        return self.properties["model_name"]

    @property
    def serving_dir(self) -> Path:
        """The folder of the SavedModel's numbered versions (``serving/<model_name>``)."""
        return self.path / self.SERVING / self.model_name

    @property
    def tflite_dir(self) -> Path:
        """The phone and edge files, with ``labels.txt`` and ``preprocessing.json``."""
        return self.path / self.TFLITE

    @property
    def failed_gates(self) -> dict[str, Check]:
        """Artifact name -> its export gate's check, for each file that failed it (or was not
        made); these are not pushed. An artifact written before checks were records stored
        "failed: <reason>" text, read here as the same check."""
        return {name: read_check(name, stored) for name, stored in self.properties.get("failed_gates", {}).items()}

    @property
    def saved_model_failure(self) -> Check | None:
        """The SavedModel's failed export gate, or None: without a SavedModel nothing is pushed."""
        return self.failed_gates.get(self.SAVED_MODEL)

    @property
    def tflite_files(self) -> dict[str, Path]:
        """Artifact name -> its .tflite file, for every file made."""
        return {name: self.path / relative for name, relative in self.properties.get("tflite_files", {}).items()}


class PushedModel(Artifact):
    """``push.json``: where the blessed model was pushed (a TF Serving model base path and
    version), the version labels after the push, and the TFLite files copied beside it."""

    TYPE = "PushedModel"
    FILE: ClassVar[str] = "push.json"

    @property
    def model_base_path(self) -> str:
        """The version's parent folder on disk (``<destination>/<name>``)."""
        return self.properties["model_base_path"]

    @property
    def version(self) -> int:
        return self.properties["version"]

    @property
    def labels(self) -> dict[str, int]:
        """Version labels of the model after the push (``stable``, ``canary``); empty = latest."""
        return self.properties.get("labels", {})


class InfraBlessing(Artifact):
    """``infra_blessing.json`` and an empty ``INFRA_BLESSED`` or ``INFRA_NOT_BLESSED`` file (as
    TFX's InfraValidator writes): whether TF Serving would load and serve the pushed version,
    every check run, and the reason when not."""

    TYPE = "InfraBlessing"
    FILE: ClassVar[str] = "infra_blessing.json"
    BLESSED: ClassVar[str] = "INFRA_BLESSED"
    NOT_BLESSED: ClassVar[str] = "INFRA_NOT_BLESSED"

    @property
    def blessed(self) -> bool:
        return bool(self.properties.get("blessed"))

    @property
    def reason(self) -> str:
        return self.properties.get("reason", "")

    @property
    def checks(self) -> list[Check]:
        """Every check run, in order (passed, failed, or not checked with the reason)."""
        return [Check.from_dict(check) for check in self.properties.get("checks", [])]
