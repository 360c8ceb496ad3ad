"""Writes tf.data's file cache of COUNT synthetic 32x32x3 images into FOLDER and prints how many
MB the process's resident memory rose above its level before the write, sampled every 10 ms.
Run in a fresh process, because a long-lived test worker's allocator holds on to memory that
earlier tests freed and hands it out unpredictably (25 MB of noise was seen in a CI run).

    python cache_write_task.py COUNT FOLDER
"""

import os
import sys
import threading
import time
from pathlib import Path

import tensorflow as tf

from visionpipe.components.common.dataset import cached


def resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def images(count: int) -> tf.data.Dataset:
    """Images sliced out of batches, as ``pixels`` makes them."""
    return (
        tf.data.Dataset.range(count)
        .batch(128)
        .map(lambda i: tf.cast(tf.reshape(i % 251, [-1, 1, 1, 1]) + tf.zeros([1, 32, 32, 3], tf.int64), tf.uint8))
        .unbatch()
    )


count, folder = int(sys.argv[1]), Path(sys.argv[2])
cached(images(5_000), str(folder / "warm-up"))  # the writer's own buffers and threads
start, peak, done = resident_mb(), [0.0], threading.Event()


def sample() -> None:
    while not done.is_set():
        peak[0] = max(peak[0], resident_mb())
        time.sleep(0.01)


sampler = threading.Thread(target=sample)
sampler.start()
try:
    written = cached(images(count), str(folder / "cache"))
finally:
    done.set()
    sampler.join()
assert sum(1 for _ in written.batch(1000)) == -(-count // 1000), "the cache does not hold every image"
print(f"{peak[0] - start:.1f}")
