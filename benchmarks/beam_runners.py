"""The ingest stage on three Beam runners, same images, same run: DirectRunner (visionpipe's
default: Beam's FnApiRunner with ``beam.direct_num_workers`` worker processes), the portable
runner against a local job service with an external worker pool, and DaskRunner on a
dask.distributed cluster of 2 single-threaded worker processes. The services start once before
the first repeat (what a user's cluster would be: already up); each ingest goes to a fresh run
root, contenders interleaved in rotated order. Every runner must write the same number of
images per split (checked); the table gives images/s and the ratio to DirectRunner.

    python benchmarks/beam_runners.py /tmp/cifar10/train --limit 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest_throughput import image_files, linked_subset
from ratios import Rates

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BIN = Path(sys.executable).parent
JOB_PORT, POOL_PORT = 18099, 18100


def start_services(work: Path) -> tuple[list[subprocess.Popen], dict[str, list[str]]]:
    """The job service, the worker pool and the Dask cluster; the beam options of each runner."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # the pool runs `python`
    scheduler_file = work / "scheduler.json"
    commands = [
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={JOB_PORT}"],
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={POOL_PORT}"],
        [str(BIN / "dask"), "scheduler", "--host=127.0.0.1", "--port=0", f"--scheduler-file={scheduler_file}"],
        [str(BIN / "dask"), "worker", f"--scheduler-file={scheduler_file}", "--nworkers=2", "--nthreads=1"],
    ]
    processes = []
    for command in commands:
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(5)  # each is up within a few seconds; the next (the dask workers) may need the previous
    runners = {
        "DirectRunner": ["beam.runner=DirectRunner"],
        "PortableRunner": [
            "beam.runner=PortableRunner",
            "beam.extra_options="
            + json.dumps(
                [
                    f"--job_endpoint=127.0.0.1:{JOB_PORT}",
                    "--environment_type=EXTERNAL",
                    f"--environment_config=127.0.0.1:{POOL_PORT}",
                ]
            ),
        ],
        "DaskRunner": [
            "beam.runner=DaskRunner",
            "beam.extra_options=" + json.dumps([f"--dask_scheduler_file={scheduler_file}"]),
        ],
    }
    return processes, runners


def ingest(folder: Path, root: Path, settings: list[str]) -> tuple[float, dict[str, int]]:
    """(seconds, images written per split) of one ingest stage."""
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(None, [f"run.root={root}", "data.source=folder", f"data.path={folder}", *settings])
    start = time.perf_counter()
    result = run_pipeline(config, only="ingest")
    seconds = time.perf_counter() - start
    assert result.ok, result.failure()
    counts = json.loads(next((root / "artifacts" / "ingest").glob("*/examples/counts.json")).read_text())
    return seconds, counts["written"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of class sub-folders, e.g. /tmp/cifar10/train")
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = image_files(args.folder, args.limit)
    folder = linked_subset(files)
    for path in files:  # warm the page cache so the first contender is not penalised
        path.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="vp-bench-runners-"))
    processes, runners = start_services(work)
    rates, written = Rates(), {}
    try:
        for repeat in range(args.repeats):
            names = list(runners)[repeat % 3 :] + list(runners)[: repeat % 3]
            seconds = {}
            for name in names:
                root = work / f"{name}-{repeat}"
                seconds[name], written[name] = ingest(folder, root, runners[name])
                shutil.rmtree(root)
            rates.add_repeat(repeat, {name: len(files) / seconds[name] for name in runners})
    finally:
        for process in processes:  # stop only what this script started
            process.kill()
        shutil.rmtree(work, ignore_errors=True)
    assert all(w == written["DirectRunner"] for w in written.values()), written
    print(
        f"\n{len(files)} images, written per split {written['DirectRunner']} by every runner; medians of {args.repeats}"
    )
    print(rates.table({"vs DirectRunner": "DirectRunner"}))


if __name__ == "__main__":
    main()
