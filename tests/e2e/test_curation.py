"""data.exclude and data.relabel (issue 22): the next ingest leaves out and relabels what the
user's curation files say, records each image with its reason, never touches the user's files,
and refuses a curation line that names no image of the data.

In-process ingest on the in-memory Beam runner (seconds each), like test_ingest_validate.py.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_folder
from tests.e2e.test_ingest_validate import ingest, records
from visionpipe.config import load_config
from visionpipe.pipeline.errors import DataError
from visionpipe.run import run_pipeline


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sources_by_label(stage) -> dict[str, str]:
    """Ingested source path -> class name, all splits."""
    return {r.source: r.class_name for split in records(stage).values() for r in split}


def curated(stage) -> list[dict]:
    text = (stage.outputs["examples"].path / "curation.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_exclude_and_relabel_files_act_on_the_next_ingest_with_lineage(tmp_path):
    data = make_folder(tmp_path / "images")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    # A findings-style CSV (as data_quality writes it, reviewed): one drop by absolute path,
    # one by a path relative to the data folder, one kept, one relabelled.
    findings = write_csv(
        tmp_path / "findings.csv",
        [
            {"kind": "label_issue", "path": str(data / "red" / "img_001.jpg"), "score": "0.01",
             "suggested_label": "green", "other_path": "", "action": "drop", "new_label": "green"},
            {"kind": "near_duplicate_leakage", "path": "blue/img_002.jpg", "score": "0.99",
             "suggested_label": "", "other_path": str(data / "blue" / "img_003.png"), "action": "", "new_label": ""},
            {"kind": "outlier", "path": str(data / "green" / "img_004.jpg"), "score": "7.1",
             "suggested_label": "", "other_path": "", "action": "keep", "new_label": ""},
            {"kind": "label_issue", "path": str(data / "red" / "img_005.jpg"), "score": "0.02",
             "suggested_label": "blue", "other_path": "", "action": "relabel", "new_label": "green"},
        ],
    )  # fmt: skip
    relabel = write_csv(tmp_path / "relabel.csv", [{"path": "blue/img_007.jpg", "label": "red"}])

    folder = ("data.source=folder", f"data.path={data}")
    stage = ingest(tmp_path / "runs", *folder, f"data.exclude={findings}", f"data.relabel={relabel}")

    labels = sources_by_label(stage)
    assert str(data / "red" / "img_001.jpg") not in labels and str(data / "blue" / "img_002.jpg") not in labels
    assert labels[str(data / "green" / "img_004.jpg")] == "green"  # kept
    assert labels[str(data / "red" / "img_005.jpg")] == "green"  # new_label, not the suggestion
    assert labels[str(data / "blue" / "img_007.jpg")] == "red"
    s = stage.summary
    assert (s["found"], s["ingested"], s["quarantined"], s["excluded"], s["relabelled"]) == (36, 34, 0, 2, 2)
    assert s["curation_reasons"] == {"drop": {"label_issue": 1, "near_duplicate_leakage": 1}, "relabel": {
        "label_issue": 1, "listed": 1}}  # fmt: skip
    assert any("curation: 2 images left out" in note for note in s["notes"]), s["notes"]
    lines = {Path(c["source"]).name: c for c in curated(stage)}
    assert lines["img_002.jpg"]["reason"].startswith("near_duplicate_leakage (score 0.99), a near-duplicate of ")
    assert lines["img_002.jpg"]["origin"] == f"{findings}:3"
    assert (lines["img_005.jpg"]["old_label"], lines["img_005.jpg"]["new_label"]) == ("red", "green")
    assert stage.outputs["examples"].curation == {"excluded": 2, "relabelled": 2}
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before  # nothing deleted or changed

    # Editing a curation file reruns ingest: what it says is in the cache key.
    write_csv(relabel, [{"path": "blue/img_007.jpg", "label": "green"}])
    again = ingest(tmp_path / "runs", *folder, f"data.exclude={findings}", f"data.relabel={relabel}")
    assert sources_by_label(again)[str(data / "blue" / "img_007.jpg")] == "green"


def test_a_plain_list_excludes_by_path_and_tfrecord_records_by_name(tmp_path):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "mine.tfrecord")) as writer:
        for i in range(12):
            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), (20 * i, 100, 200 - 10 * i)).save(buffer, format="PNG")
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
                "image/class/label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ab"[i % 2 : i % 2 + 1]])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    source = ("data.source=tfrecord", f"data.path={tmp_path}/*.tfrecord")
    names = sorted(sources_by_label(ingest(tmp_path / "first", *source)))
    listed = tmp_path / "exclude.txt"
    listed.write_text(f"# left out after review\n{names[0]}\n\n{names[5]}\n")
    stage = ingest(tmp_path / "runs", *source, f"data.exclude={listed}")
    assert sorted(sources_by_label(stage)) == [n for i, n in enumerate(names) if i not in (0, 5)]
    assert {c["origin"] for c in curated(stage)} == {f"{listed}:2", f"{listed}:4"}
    assert {c["reason"] for c in curated(stage)} == {f"listed in {listed}"}


def failed_ingest(tmp_path: Path, *overrides: str) -> str:
    """The error that ingest (or reading its settings) stops with."""
    try:
        config = load_config(None, [f"run.root={tmp_path / 'runs'}", "beam.direct_running_mode=in_memory", *overrides])
        result = run_pipeline(config, only="ingest")
    except DataError as err:
        return str(err)
    assert result.stages[0].status == "failed", result.stages[0].summary
    return result.stages[0].message


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([{"path": "red/no_such.jpg"}], "1 curation rows name no image of the data ({file}:2)"),
        ([{"path": "red/img_001.jpg", "action": "relabel", "new_label": "gren"}], "to 'gren' ({file}:2)"),
        ([{"path": "red/img_001.jpg", "action": "remove"}], "{file}:2: action 'remove' is not one of drop"),
        ([{"path": "red/img_001.jpg", "action": "relabel", "new_label": ""}], "needs the new label"),
        (
            [
                {"path": "red/img_001.jpg", "action": "drop"},
                {"path": "red/img_001.jpg", "action": "relabel", "new_label": "blue"},
            ],
            "{file}:3 says relabel to 'blue'",
        ),  # fmt: skip
        ([{"file": "red/img_001.jpg"}], "has no path column"),
        ([{"path": " "}], "{file}:2: the path is empty"),
    ],
)
def test_a_curation_file_that_cannot_be_followed_is_an_error_naming_its_line(tmp_path, rows, says):
    data = make_folder(tmp_path / "images", per_class=4)
    exclude = write_csv(tmp_path / "exclude.csv", rows)
    message = failed_ingest(tmp_path, "data.source=folder", f"data.path={data}", f"data.exclude={exclude}")
    assert says.format(file=exclude) in message, message


def test_a_missing_curation_file_is_named(tmp_path):
    data = make_folder(tmp_path / "images", per_class=4)
    message = failed_ingest(tmp_path, "data.source=folder", f"data.path={data}", f"data.relabel={tmp_path}/gone.csv")
    assert f"cannot read data.relabel='{tmp_path}/gone.csv'" in message, message
