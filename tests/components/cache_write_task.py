"""Writes tf.data's file cache of COUNT synthetic 32x32x3 images into FOLDER and prints how many
MB the process's resident memory rose during the second half of the write (by time) above its
peak in the first half, sampled every 10 ms. A writer that keeps what it wrote grows all along
(half of its growth falls in the second half); the whole-run growth was 15-105 MB beside other
processes (69 MB in a CI run), likely the one-off start-up of the writer's threads and malloc
arenas under CPU contention, which comes before the midpoint.
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
samples: list[tuple[float, float]] = []  # (seconds, resident MB)
done = threading.Event()


def sample() -> None:
    while not done.is_set():
        samples.append((time.perf_counter(), resident_mb()))
        time.sleep(0.01)


sampler = threading.Thread(target=sample)
sampler.start()
try:
    written = cached(images(count), str(folder / "cache"))
finally:
    done.set()
    sampler.join()
assert sum(1 for _ in written.batch(1000)) == -(-count // 1000), "the cache does not hold every image"
middle = (samples[0][0] + samples[-1][0]) / 2
first_half = max(mb for t, mb in samples if t <= middle)
print(f"{max(mb for _, mb in samples) - first_half:.1f}")
