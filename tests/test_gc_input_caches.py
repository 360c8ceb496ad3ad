"""visionpipe gc also frees the training input pipeline's file cache of what no run will read:
a cache whose writing was stopped. A finished cache stays, and the next run reads it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from visionpipe import gc
from visionpipe.components.common.dataset import FILE_CACHE_DONE, cached
from visionpipe.components.train.input_pipeline import CACHE_PREFIX
from visionpipe.pipeline.metadata import MetadataStore

# Writes a large cache and is killed while it writes.
WRITER = """
import sys, tensorflow as tf
from visionpipe.components.common.dataset import cached
big = tf.data.Dataset.range(10**7).map(lambda x: tf.fill([256], x))
print("writing", flush=True)
cached(big, sys.argv[1])
"""


def _files(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())


def test_gc_removes_a_cache_whose_writing_was_stopped_and_keeps_the_finished_one(tmp_path):
    cache = tmp_path / "cache"
    finished_folder = cache / "chief" / f"{CACHE_PREFIX}0123456789abcdef-train"  # one of several workers'
    stopped_folder = cache / f"{CACHE_PREFIX}fedcba9876543210-train"  # one worker's layout
    finished = tf.data.Dataset.range(40).map(lambda x: tf.fill([8], x))
    assert [int(x[0]) for x in cached(finished, str(finished_folder))] == list(range(40))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(stopped_folder)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not any(stopped_folder.rglob("*.shard")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert any(stopped_folder.rglob("*.shard")) and not (stopped_folder / FILE_CACHE_DONE).exists()

    found = gc.plan(MetadataStore(tmp_path / "metadata.sqlite"), tmp_path / "serving", "m", 1, cache)
    assert found.caches == [stopped_folder]
    before = _files(finished_folder)
    freed = gc.remove(MetadataStore(tmp_path / "metadata.sqlite"), found, lambda line: None)
    assert freed > 0 and not stopped_folder.exists()
    assert [int(x[0]) for x in cached(finished, str(finished_folder))] == list(range(40))
    assert _files(finished_folder) == before  # read, not written again
    assert gc.unfinished_caches(cache) == []
