"""Ingest and validate beyond DirectRunner: Beam's portable runner against a local job service
with an external worker pool (the Fn API, coders and pickled DoFns remote runners use, in other
processes), and DaskRunner on a dask.distributed cluster of 2 worker processes. Each must write
the same Examples as DirectRunner: the same records per split, statistics and quarantine."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.e2e.helpers import visionpipe
from tests.processes import Background, free_ports
from visionpipe.data import record_format

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """120 images of varied sizes and formats in 3 class folders, and one broken file."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for label in ("cat", "dog", "fox"):
        (root / label).mkdir()
        for i in range(40):
            height, width = rng.integers(20, 60, 2)
            pixels = rng.integers(0, 255, (height, width, 3), np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.{('png', 'jpg')[i % 2]}")
    (root / "cat" / "broken.jpg").write_bytes(b"not an image")
    return root


def _ingest_and_validate(photos: Path, root: Path, *options: str) -> Path:
    """Runs ingest then validate under the given beam options; the Examples folder."""
    for stage in ("ingest", "validate"):
        result = visionpipe("run", "--data", str(photos), "--set", f"run.root={root}", *options, "--stage", stage)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "found 121 = ingested 120 + quarantined 1" in (root / "runs" / "1" / "run.log").read_text()
    return next((root / "artifacts" / "ingest").glob("*/examples"))


def _content(examples: Path) -> dict:
    """Every split's records (parsed: a proto's map fields serialise in no fixed order) by source,
    the statistics and the quarantine."""
    splits = {}
    for split in ("train", "val", "test"):
        files = sorted(str(p) for p in (examples / split).glob("data-*"))
        parsed = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files)]
        splits[split] = {e.features.feature[record_format.SOURCE].bytes_list.value[0]: e for e in parsed}
    return {
        "records": splits,
        "statistics": json.loads((examples / "split_stats.json").read_text()),
        "quarantine": (examples / "quarantine.jsonl").read_text(),
    }


def _assert_same(direct: dict, other: dict, runner: str) -> None:
    for split, records in direct["records"].items():
        assert len(other["records"][split]) == len(records), (runner, split)
        assert other["records"][split] == records, (runner, split)
    assert sum(len(r) for r in direct["records"].values()) == 120
    assert other["statistics"] == direct["statistics"], runner
    assert other["quarantine"] == direct["quarantine"] and "broken.jpg" in direct["quarantine"], runner


@pytest.fixture(scope="module")
def direct_examples(photos, tmp_path_factory) -> Path:
    return _ingest_and_validate(photos, tmp_path_factory.mktemp("direct"))


@pytest.fixture(scope="module")
def direct(direct_examples) -> dict:
    return _content(direct_examples)


def test_the_portable_runner_on_a_local_job_service_writes_what_direct_writes(photos, direct, tmp_path):
    job_port, pool_port = free_ports(2)
    # The pool starts each SDK worker as `python -c ...`: this environment's python must come first.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    module = "apache_beam.runners.portability.local_job_service_main"
    job_service = Background([sys.executable, "-m", module, f"--port={job_port}"], env=env)
    pool = Background(
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"], env=env
    )
    try:
        job_service.wait_for("Listening for beam jobs")
        pool.wait_for("Started worker pool servicer")
        options = [
            f"--job_endpoint=127.0.0.1:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=127.0.0.1:{pool_port}",
        ]
        examples = _ingest_and_validate(
            photos, tmp_path, "--set", "beam.runner=PortableRunner", f"--set=beam.extra_options={json.dumps(options)}"
        )
        pool.wait_for("Starting worker with command", timeout=5)  # the pool's processes ran the pipeline
    finally:
        pool.stop()
        job_service.stop()
    _assert_same(direct, _content(examples), "PortableRunner")


def test_dask_on_two_worker_processes_writes_what_direct_writes(photos, direct, direct_examples, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    scheduler = Background(
        [str(BIN / "dask"), "scheduler", "--host=127.0.0.1", "--port=0", f"--scheduler-file={scheduler_file}", *common]
    )
    workers = Background(
        [str(BIN / "dask"), "worker", f"--scheduler-file={scheduler_file}", "--nworkers=2", "--nthreads=1", *common]
    )
    try:
        scheduler.wait_for("Scheduler at:")
        for _ in range(2):
            workers.wait_for("Registered to:")
        options = [f"--dask_scheduler_file={scheduler_file}"]
        examples = _ingest_and_validate(
            photos,
            tmp_path / "root",
            "--set",
            "beam.runner=DaskRunner",
            f"--set=beam.extra_options={json.dumps(options)}",
        )
        log = (tmp_path / "root" / "runs" / "1" / "run.log").read_text()
        assert "--runner=apache_beam.runners.dask.dask_runner.DaskRunner" in log
        # A TFRecord source takes the other branch (ReadAllFromTFRecord, a GroupByKey): DirectRunner's records
        records = visionpipe(
            "run",
            *("--set", f"run.root={tmp_path / 'records'}", "--set", "data.source=tfrecord"),
            *(
                "--set",
                f"data.path={direct_examples}/*/data-*",
                "--set",
                f"data.tfrecord.image_key={record_format.ENCODED}",
            ),
            *(
                "--set",
                f"data.tfrecord.label_key={record_format.LABEL}",
                "--set=data.tfrecord.class_names=[cat,dog,fox]",
            ),
            *("--set", "beam.runner=DaskRunner", f"--set=beam.extra_options={options}", "--stage", "ingest"),
        )
        assert records.returncode == 0 and "found 120 = ingested 120 + quarantined 0" in records.stdout, records.stdout
    finally:
        workers.stop()
        scheduler.stop()
    _assert_same(direct, _content(examples), "DaskRunner")
