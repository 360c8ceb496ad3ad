"""Multi-label data through ingest and validate: label lists from CSV and JSONL manifests and
TFRecords, every bad row quarantined with its line, the records' label ids, per-label
statistics and co-occurrence."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_multi_label_set
from tests.e2e.test_ingest_validate import ingest, quarantine, records, run_stage
from tests.tfds_fixture import DS_NAME, MULTI_COUNTS, MULTI_NAME, TAGS, tag_ids


def write_csv(tmp_path, rows, extra: list[str] = ()):
    lines = ["path,label"] + [f"images/{name},{'|'.join(labels)}" for name, labels in rows] + list(extra)
    (tmp_path / "tags.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "tags.csv"


def test_csv_label_lists_are_inferred_checked_and_written_as_id_lists(tmp_path):
    rows = make_multi_label_set(tmp_path / "images", 100)
    bad = [
        "images/img_0000.png,",  # line 102: no label
        "images/img_0001.png,red||green",  # line 103: an empty label between delimiters
        "images/img_0002.png,red|purple",  # line 104: not in the vocabulary
    ]
    manifest = write_csv(tmp_path, rows, bad)
    stage = ingest(
        tmp_path / "runs",
        "data.source=manifest",
        f"data.path={manifest}",
        "data.labels.vocabulary=[red, green, blue]",
    )
    examples = stage.outputs["examples"]
    assert examples.multi_label and examples.classes == ["blue", "green", "red"]
    assert any("multi-label: 3 labels (inferred: line 2 labels an image" in note for note in stage.summary["notes"])
    assert (stage.summary["found"], stage.summary["ingested"], stage.summary["quarantined"]) == (103, 100, 3)
    reasons = quarantine(stage)
    assert "tags.csv:102" in reasons and "no label" in reasons["tags.csv:102"]
    assert "empty label" in reasons["tags.csv:103"]
    assert "'purple' is not in data.labels.vocabulary" in reasons["tags.csv:104"]

    import tensorflow as tf

    expected = {name: labels for name, labels in rows}
    spec = {"image/label": tf.io.VarLenFeature(tf.int64), "image/source": tf.io.FixedLenFeature([], tf.string)}
    seen = 0
    for split in ("train", "val", "test"):
        files = sorted(str(p) for p in (examples.path / split).glob("data-*"))
        for raw in tf.data.TFRecordDataset(files):
            parsed = tf.io.parse_single_example(raw, spec)
            name = parsed["image/source"].numpy().decode().rsplit("/", 1)[-1]
            ids = tf.sparse.to_dense(parsed["image/label"]).numpy().tolist()
            assert [examples.classes[i] for i in ids] == sorted(expected[name]), name
            seen += 1
    assert seen == 100
    # Stratified by the rarest label: every label reaches every split.
    for split in ("train", "val", "test"):
        assert set(examples.class_counts(split)) == {"blue", "green", "red"}, split


def test_jsonl_lists_bad_rows_and_validate_cooccurrence(tmp_path):
    rows = make_multi_label_set(tmp_path / "images", 48, seed=1)
    lines = [json.dumps({"path": f"images/{name}", "label": list(labels)}) for name, labels in rows]
    lines += [
        json.dumps({"path": "images/img_0000.png", "label": ["red", 3]}),  # line 49: not a string
        json.dumps({"path": "images/img_0001.png", "label": []}),  # line 50: empty
    ]
    (tmp_path / "tags.jsonl").write_text("\n".join(lines) + "\n")
    overrides = (
        "data.source=manifest",
        f"data.path={tmp_path / 'tags.jsonl'}",
        "validate.min_train_images_per_class=1",
    )
    stage = ingest(tmp_path / "runs", *overrides)
    reasons = quarantine(stage)
    assert "not a string" in reasons["tags.jsonl:49"] and "no label" in reasons["tags.jsonl:50"]
    validate = run_stage(tmp_path / "runs", "validate", *overrides)
    summary = json.loads((validate.outputs["statistics"].path / "summary.json").read_text())
    ingested = {s: {r.source.rsplit("/", 1)[-1] for r in rs} for s, rs in records(stage).items()}
    train = [labels for name, labels in rows if name in ingested["train"]]
    both = sum({"green", "red"} <= set(labels) for labels in train)
    assert summary["train"]["cooccurrence"]["green|red"] == both > 0
    assert summary["train"]["classes"]["green"] == sum("green" in labels for labels in train)
    assert summary["train"]["labels_per_image"] == np.mean([len(labels) for labels in train])
    report = (validate.outputs["anomalies"].path / "report.md").read_text()
    assert f"train: {summary['train']['labels_per_image']:.2f} labels per image, 0 images with no label" in report
    assert "Label sets (multi-label)" in (validate.outputs["anomalies"].path / "report.html").read_text()


def test_tfrecord_multi_hot_labels_when_the_task_is_said(tmp_path):
    import tensorflow as tf

    hot = {0: [1.0, 0.0, 1.0], 1: [0.0, 1.0, 0.0], 2: [0.0, 0.0, 0.0]}
    with tf.io.TFRecordWriter(str(tmp_path / "mine.tfrecord")) as writer:
        for i in range(12):
            buffer = io.BytesIO()
            Image.fromarray(np.full((16, 16, 3), i * 20, np.uint8)).save(buffer, format="PNG")
            feature = {
                "img": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
                "y": tf.train.Feature(float_list=tf.train.FloatList(value=hot[i % 3])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    stage = ingest(
        tmp_path / "runs",
        "data.source=tfrecord",
        f"data.path={tmp_path}/*.tfrecord",
        "data.tfrecord.image_key=img",
        "data.tfrecord.label_key=y",
        "data.tfrecord.class_names=[cat, dog, bird]",
        "data.labels.task=multi_label",
    )
    assert stage.outputs["examples"].multi_label and stage.outputs["examples"].classes == ["bird", "cat", "dog"]
    assert (stage.summary["ingested"], stage.summary["quarantined"]) == (8, 4)
    assert all("record has no label" in reason for reason in quarantine(stage).values()), quarantine(stage)
    names = sorted({r.class_name for rs in records(stage).values() for r in rs})
    assert names == ["bird|cat", "dog"]


def test_a_tfds_sequence_of_class_labels_is_read_as_label_sets(tmp_path, tfds_data_dir):
    source = ("data.source=tfds", f"data.tfds_name={MULTI_NAME}", f"data.tfds_data_dir={tfds_data_dir}")
    stage = ingest(tmp_path / "runs", *source)  # task auto: the dataset has no ClassLabel feature
    assert stage.outputs["examples"].multi_label and stage.outputs["examples"].classes == sorted(TAGS)
    assert (
        "multi-label: 3 labels (TFDS feature 'labels' is a Sequence of ClassLabel (it has no ClassLabel "
        "feature))" in stage.summary["notes"]
    )
    # train image 0 carries no label: quarantined (data.labels.allow_empty is off)
    assert (stage.summary["ingested"], stage.summary["quarantined"]) == (sum(MULTI_COUNTS.values()) - 1, 1)
    expected = sorted("|".join(sorted(TAGS[t] for t in tag_ids("test", i))) for i in range(MULTI_COUNTS["test"]))
    assert sorted(r.class_name for r in records(stage)["test"]) == expected
    allowed = ingest(tmp_path / "runs2", *source, "data.labels.allow_empty=true")
    assert allowed.summary["quarantined"] == 0
    # a single-label dataset read as multi-label, and the other way round: what to set, said
    with pytest.raises(AssertionError, match="Sequence of ClassLabel feature"):
        ingest(tmp_path / "runs3", "data.source=tfds", f"data.tfds_name={DS_NAME}",
               f"data.tfds_data_dir={tfds_data_dir}", "data.labels.task=multi_label")  # fmt: skip
    with pytest.raises(AssertionError, match="Set data.labels.task to multi_label"):
        ingest(tmp_path / "runs4", *source, "data.labels.task=single_label")


def test_a_folder_of_class_folders_cannot_be_multi_label(tmp_path):
    from tests.conftest import make_folder
    from visionpipe.components.ingest import sources
    from visionpipe.config import load_config
    from visionpipe.pipeline.errors import DataError

    config = load_config(
        None, ["data.source=folder", f"data.path={make_folder(tmp_path / 'f', 2)}", "data.labels.task=multi_label"]
    )
    with pytest.raises(DataError, match="gives each image one class; list multi-label images in a manifest"):
        sources.list_source(config.data, None)


def test_a_multi_label_manifest_through_every_stage_and_the_server(tmp_path):
    """ingest -> ... -> push through the CLI; the SavedModel and the int8 file give Keras' per-label
    probabilities; `visionpipe predict` lists the labels above their thresholds in process and
    through `visionpipe serve` over REST and gRPC."""
    import sys

    from tests.conftest import tiny_config_yaml
    from tests.e2e.helpers import REPO, visionpipe
    from tests.processes import Background, free_ports
    from visionpipe.components.common.trained_model import load_trained
    from visionpipe.components.export.tflite_metadata import metadata_python, show
    from visionpipe.serving.tflite_runner import TFLiteClassifier

    rows = make_multi_label_set(tmp_path / "images", 160)
    manifest = write_csv(tmp_path, rows)
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config_yaml(tmp_path / "runs", manifest).replace("source: folder", "source: manifest"))
    run = visionpipe("run", "--config", str(config), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "multi-label: 3 labels (inferred" in run.stdout and "mAP" in run.stdout
    report = next((tmp_path / "runs" / "runs").glob("*/report.md")).read_text()
    assert "mAP vs chance" in report and "| label | AP | threshold |" in report

    artifacts = tmp_path / "runs" / "artifacts"
    thresholds = json.loads(next(artifacts.glob("evaluate/*/evaluation/thresholds.json")).read_text())
    assert [t["label"] for t in thresholds] == ["blue", "green", "red"]
    exported = next(artifacts.glob("export/*/exported_model"))
    table = json.loads((exported / "artifacts.json").read_text())
    assert {"saved_model", "tflite_float", "tflite_int8"} <= set(table) and all("map" in r for r in table.values())

    # The exported files against the trained Keras model, on the same images.
    import tensorflow as tf

    from visionpipe.models.preprocessing import PreprocessingSpec, load_image
    from visionpipe.serving.served_signature import load_signature

    model, _, _ = load_trained(next(artifacts.glob("train/*/model")))
    spec = PreprocessingSpec.load(exported / "tflite" / "preprocessing.json")
    files = [tmp_path / "images" / name for name, _ in rows[:8]]
    encoded = [f.read_bytes() for f in files]
    images = np.stack([load_image(tf.constant(b), spec).numpy() for b in encoded])
    expected = model.predict(images, verbose=0)
    served = load_signature(exported / "serving" / "visionpipe" / "1")(image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert not np.allclose(expected.sum(axis=1), 1.0)  # independent per-label probabilities, not a softmax
    int8 = TFLiteClassifier(exported / "tflite" / "model_int8.tflite").predict(images)
    np.testing.assert_allclose(int8, expected, atol=0.08)
    python = metadata_python("auto")
    assert python is not None, "make install sets up .venv-tflite-support"
    metadata = show(python, exported / "tflite" / "model_int8.tflite")
    assert metadata["files"] == ["labels.txt", "thresholds.json"] and metadata["labels"] == ["blue", "green", "red"]
    assert metadata["metadata"]["description"].startswith("Multi-label: an independent probability per label")
    assert json.loads((exported / "tflite" / "thresholds.json").read_text()) == [t["threshold"] for t in thresholds]
    assert table["tflite_int8"]["task_library"] == "yes"

    base = tmp_path / "runs" / "serving" / "visionpipe"
    local = visionpipe("predict", "--model", str(base), "--json", *map(str, files))
    assert local.returncode == 0, local.stderr
    want = [sorted(labels) for _, labels in rows[:8]]
    found = [r["labels"] for r in json.loads(local.stdout)]
    assert sum(f == w for f, w in zip(found, want, strict=True)) >= 6, (found, want)
    rest_port, grpc_port = free_ports(2)
    server = Background(
        [sys.executable, "-m", "visionpipe", "serve", f"--model_base_path={base}", "--model_name=visionpipe",
         f"--rest_api_port={rest_port}", f"--port={grpc_port}"],
        cwd=REPO,
    )  # fmt: skip
    try:
        server.wait_for("development server")
        for protocol, port in (("rest", rest_port), ("grpc", grpc_port)):
            remote = visionpipe(
                "predict", "--server", f"127.0.0.1:{port}", "--model-name", "visionpipe", "--protocol", protocol,
                *map(str, files[:2]),
            )  # fmt: skip
            assert remote.returncode == 0, remote.stderr
            for labels in found[:2]:
                assert f"labels above their thresholds: {', '.join(labels) or '(none)'}" in remote.stdout, protocol
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_relabelling_a_multi_label_image_gives_it_the_new_label_set(tmp_path):
    rows = make_multi_label_set(tmp_path / "images", 40, seed=2)
    manifest = write_csv(tmp_path, rows)
    (tmp_path / "fix.csv").write_text("path,label\nimages/img_0003.png,red|blue\nimages/img_0004.png,green\n")
    stage = ingest(
        tmp_path / "runs", "data.source=manifest", f"data.path={manifest}", f"data.relabel={tmp_path / 'fix.csv'}"
    )
    assert stage.summary["relabelled"] == 2
    given = {r.source.rsplit("/", 1)[-1]: r.class_name for rs in records(stage).values() for r in rs}
    assert given["img_0003.png"] == "blue|red" and given["img_0004.png"] == "green"
    (tmp_path / "typo.csv").write_text("path,label\nimages/img_0003.png,red|bleu\n")
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(
        None,
        [f"run.root={tmp_path / 'runs2'}", "data.source=manifest", f"data.path={manifest}",
         f"data.relabel={tmp_path / 'typo.csv'}", "beam.direct_running_mode=in_memory", "beam.direct_num_workers=1"],
    )  # fmt: skip
    stage = run_pipeline(config, only="ingest").stages[0]
    assert stage.status == "failed" and "relabels images to 'bleu'" in stage.message and "typo.csv:2" in stage.message
