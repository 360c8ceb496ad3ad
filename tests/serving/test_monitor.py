"""``visionpipe monitor``: a request log whose predicted classes, image sizes or channels moved
away from the train split is reported as drift (exit code 1); a matching one is not."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.serving.conftest import CLASSES
from visionpipe import cli
from visionpipe.data.drift import DriftConfig
from visionpipe.pipeline.artifacts import Statistics
from visionpipe.pipeline.metadata import MetadataStore
from visionpipe.serving import monitor, request_log
from visionpipe.serving.request_log import RequestLog

TRAIN = {  # the train split as validate's summary.json has it: 40 images of 32x24 px, RGB
    "count": 120,
    "classes": {"red": 40, "green": 40, "blue": 40},
    "channels": {"3": 120},
    "height": {"min": 24, "max": 24, "mean": 24.0, "std": 0.0},
    "width": {"min": 32, "max": 32, "mean": 32.0, "std": 0.0},
}


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


def write_log(path, predicted: list[str], size=(32, 24), mode="RGB", per_request: int = 4) -> None:
    """Requests of ``per_request`` images through the server's own RequestLog writer."""
    log = RequestLog(path)
    image = png(*size, mode)
    for start in range(0, len(predicted), per_request):
        chunk = predicted[start : start + per_request]
        inputs = {"image_bytes": np.array([image] * len(chunk), dtype=object)}
        outputs = {"predicted_class": np.array([c.encode() for c in chunk], dtype=object)}
        log.record("visionpipe", 3, "serving_default", inputs, outputs)
    log.close()


def verdicts(path) -> dict[str, str]:
    """Each check's outcome as the report labels it (ok, drift, too few images)."""
    traffic = monitor.TrafficStats.of(request_log.read(path))
    return {c.name: monitor.LABELS[c.outcome] for c in monitor.compare(traffic, TRAIN, DriftConfig())}


def test_matching_traffic_is_not_drift(tmp_path):
    write_log(tmp_path / "log.jsonl", CLASSES * 30)
    assert verdicts(tmp_path / "log.jsonl") == {"label_drift": "ok", "size_drift": "ok", "channel_drift": "ok"}


def test_skewed_classes_bigger_images_and_gray_images_are_drift(tmp_path):
    write_log(tmp_path / "classes.jsonl", ["red"] * 70 + ["green"] * 10 + ["blue"] * 10)
    assert verdicts(tmp_path / "classes.jsonl")["label_drift"] == "drift"
    write_log(tmp_path / "sizes.jsonl", CLASSES * 30, size=(64, 48))
    assert verdicts(tmp_path / "sizes.jsonl") == {"label_drift": "ok", "size_drift": "drift", "channel_drift": "ok"}
    write_log(tmp_path / "gray.jsonl", CLASSES * 30, mode="L")
    assert verdicts(tmp_path / "gray.jsonl")["channel_drift"] == "drift"


def test_too_few_images_give_no_verdict(tmp_path):
    write_log(tmp_path / "log.jsonl", ["red"] * 10)
    assert set(verdicts(tmp_path / "log.jsonl").values()) == {"too few images"}


def test_the_log_skips_a_torn_last_line(tmp_path):
    write_log(tmp_path / "log.jsonl", CLASSES)
    with (tmp_path / "log.jsonl").open("a") as f:
        f.write('{"time": 1, "model": "visi')  # a server killed mid-write
    lines = request_log.read(tmp_path / "log.jsonl")
    assert len(lines) == 1 and lines[0]["images"] == [{"height": 24, "width": 32, "channels": 3}] * 3


@pytest.fixture
def run_root(tmp_path):
    """A run root whose metadata store has a validate execution with a Statistics artifact."""
    statistics = tmp_path / "runs" / "artifacts" / "validate" / "1" / "statistics"
    statistics.mkdir(parents=True)
    (statistics / "summary.json").write_text(json.dumps({"train": TRAIN}))
    store = MetadataStore(tmp_path / "runs" / "metadata.sqlite")
    run = store.start_run("test", {}, "visionpipe run")
    execution = store.start_execution(run, "validate", "f1", {})
    store.finish_execution(execution, {"statistics": Statistics(uri=str(statistics))}, {})
    store.close()
    return tmp_path / "runs"


def test_cli_finds_the_latest_statistics_and_exits_1_on_drift(run_root, tmp_path, capsys):
    write_log(tmp_path / "skewed.jsonl", ["blue"] * 60 + ["red"] * 30)
    code = cli.main(["monitor", "--set", f"run.root={run_root}", "--request-log", str(tmp_path / "skewed.jsonl")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "label_drift    DRIFT" in out and "L-infinity 0.333 > 0.1" in out and "class blue: 33.3%" in out
    assert "serving drift: label_drift" in out and str(run_root / "artifacts" / "validate") in out

    write_log(tmp_path / "fine.jsonl", CLASSES * 30)
    code = cli.main(["monitor", "--set", f"run.root={run_root}", "--request-log", str(tmp_path / "fine.jsonl")])
    out = capsys.readouterr().out
    assert code == 0 and out.strip().endswith("no serving drift"), out
    assert "90 logged requests" not in out and "23 logged requests, 90 images" in out


def test_cli_says_what_is_missing(tmp_path, capsys):
    code = cli.main(["monitor", "--set", f"run.root={tmp_path}", "--request-log", str(tmp_path / "x.jsonl")])
    assert code == 2 and "no Statistics artifact" in capsys.readouterr().err


def test_the_log_is_read_per_model_and_time(tmp_path):
    log = RequestLog(tmp_path / "log.jsonl")
    outputs = {"predicted_class": np.array([b"red"], dtype=object)}
    log.record("a", 1, "serving_default", {}, outputs)
    log.record("b", 1, "serving_default", {}, outputs)
    log.close()
    lines = request_log.read(tmp_path / "log.jsonl")
    assert [line["model"] for line in lines] == ["a", "b"] and lines[0]["images"] == []
    assert [line["model"] for line in request_log.read(tmp_path / "log.jsonl", model="b")] == ["b"]
    assert request_log.read(tmp_path / "log.jsonl", since=lines[-1]["time"] + 10) == []
