"""The training input pipeline: every image once per epoch, caches, determinism, class balance."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.components.common.dataset import FILE_CACHE_DONE
from visionpipe.components.train.augment import build_policy
from visionpipe.components.train.config import AugmentConfig, AugmentOpConfig, InputConfig
from visionpipe.components.train.input_pipeline import (
    CacheChoice,
    balancing_weights,
    choose_cache,
    class_frequencies,
    shuffle_buffer,
    training_dataset,
)
from visionpipe.data import record_format
from visionpipe.models.preprocessing import PreprocessingSpec

CACHE_WRITE_TASK = Path(__file__).with_name("cache_write_task.py")

SPEC = PreprocessingSpec(height=8, width=8, channels=3, resize_policy="stretch", mean=(0.5,) * 3, std=(0.25,) * 3)


def _examples(folder, labels: list[int], shards: int = 3):
    """One distinct 8x8 PNG per label, spread over ``shards`` TFRecord files of the train split."""
    (folder / "train").mkdir(parents=True)
    writers = [
        tf.io.TFRecordWriter(str(folder / "train" / f"data-{i:05d}-of-{shards:05d}.tfrecord")) for i in range(shards)
    ]
    for i, label in enumerate(labels):
        pixels = np.full((8, 8, 3), i % 256, np.uint8)
        pixels[0, 0] = [i // 256, label, 7]
        encoded = tf.io.encode_png(pixels).numpy()
        writers[i % shards].write(
            tf.train.Example(
                features=tf.train.Features(
                    feature={
                        record_format.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                        record_format.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                        record_format.SOURCE: tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[f"{i}.png".encode()])
                        ),
                    }
                )
            ).SerializeToString()
        )
    for writer in writers:
        writer.close()
    return folder


def _ids(images: np.ndarray) -> list[int]:
    """The index each test image was made from (encoded in its pixels)."""
    raw = np.round(images * 255).astype(int)
    return list(raw[:, 0, 0, 0] * 256 + raw[:, 1, 1, 0])


MEMORY = CacheChoice("memory", "", 0.0, "test")


def test_each_epoch_yields_every_image_once_in_a_new_order(tmp_path):
    ds = training_dataset(
        _examples(tmp_path, [i % 3 for i in range(50)]),
        SPEC,
        3,
        8,
        InputConfig(shuffle_buffer=64),
        seed=1,
        cache=MEMORY,
    )
    epochs = [[i for x, _ in ds for i in _ids(x.numpy())] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(50))
    assert epochs[0] != epochs[1]
    x, y = next(iter(ds))
    assert x.dtype == tf.float32 and y.shape == (8, 3)


def test_the_split_size_is_known_up_front_and_checked(tmp_path):
    examples = _examples(tmp_path, [i % 3 for i in range(50)])
    sized = training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=1, cache=MEMORY, num_images=50)
    assert int(sized.cardinality()) == 7  # Keras knows the epoch's steps before the first epoch ends
    assert sum(int(x.shape[0]) for x, _ in sized) == 50
    wrong = training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=1, cache=MEMORY, num_images=60)
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain 60 elements"):
        for _ in wrong:
            pass


def test_cache_choice_follows_the_budgets(tmp_path):
    # 10,000 images of 8x8x3 bytes = 1.83 MB
    pick = lambda **kw: choose_cache(InputConfig(**kw), 10_000, SPEC, tmp_path / "c", "data-v1")
    assert pick(memory_budget_mb=2).kind == "memory"
    assert pick(memory_budget_mb=1).kind == "file"
    assert pick(memory_budget_mb=1, file_budget_mb=1).kind == "off"
    assert pick(cache="off").kind == "off" and pick(cache="file", memory_budget_mb=100).kind == "file"
    assert (
        pick(cache="file").prefix != choose_cache(InputConfig(cache="file"), 10, SPEC, tmp_path / "c", "data-v2").prefix
    )


def test_a_split_cached_in_memory_is_shuffled_whole():
    file_cache = CacheChoice("file", "/tmp/x", 0.0, "test")
    assert shuffle_buffer(InputConfig(), MEMORY, 40_000) == 40_000
    assert shuffle_buffer(InputConfig(), file_cache, 40_000) == shuffle_buffer(InputConfig(), MEMORY, None) == 10_000
    assert shuffle_buffer(InputConfig(shuffle_buffer=500), MEMORY, 40_000) == 500


def test_file_cache_is_written_once_then_read_instead_of_the_records(tmp_path):
    examples = _examples(tmp_path / "ex", list(range(3)) * 8)
    cache = choose_cache(InputConfig(cache="file"), 24, SPEC, tmp_path / "cache", "v1")
    assert "written now, before the first epoch" in cache.reason  # what the train log says
    ds = training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=0, cache=cache)
    first = sorted(i for x, _ in ds for i in _ids(x.numpy()))
    assert list((tmp_path / "cache").glob(f"*-train/{FILE_CACHE_DONE}")), "no file cache written"
    for shard in (examples / "train").iterdir():  # the second pass must not read them
        shard.write_bytes(b"not a record")
    cache = choose_cache(InputConfig(cache="file"), 24, SPEC, tmp_path / "cache", "v1")
    assert ", read (" in cache.reason
    again = training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=0, cache=cache)
    assert sorted(i for x, _ in again for i in _ids(x.numpy())) == first == list(range(24))
    uncached = training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=0, cache=CacheChoice("off", "", 0, ""))
    with pytest.raises(tf.errors.DataLossError):
        list(uncached)


def test_the_file_cache_writes_with_flat_memory(tmp_path):
    # 240,000 32x32x3 images (700 MB). The task prints the growth in the write's second half (by
    # time) above the first half's peak: Dataset.cache(filename), the regression, grew 229 MB
    # there; the one-shard writer 0-4 MB, also beside two busy loops. Its whole-run growth was
    # 3-6 MB on a quiet machine, 15-105 MB beside other processes and 69 MB in a CI run; the
    # likely cause, the start-up of the writer's threads and malloc arenas under CPU contention,
    # comes before the midpoint. Two arenas make that start-up smaller still.
    done = subprocess.run(
        [sys.executable, str(CACHE_WRITE_TASK), "240000", str(tmp_path)],
        check=True, timeout=300, capture_output=True, text=True, env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )  # fmt: skip
    assert float(done.stdout.split()[-1]) < 60


def _digest(ds, batches=4) -> str:
    h = hashlib.sha256()
    for x, y in ds.take(batches):
        h.update(x.numpy().tobytes())
        h.update(y.numpy().tobytes())
    return h.hexdigest()


def test_deterministic_mode_repeats_batches_and_augmentations(tmp_path):
    examples = _examples(tmp_path, [i % 4 for i in range(96)])
    policy = lambda: build_policy(
        AugmentConfig(
            policy=(
                AugmentOpConfig("translate"),
                AugmentOpConfig("rand_augment", probability=0.5),
                AugmentOpConfig("mixup"),
            )
        ),
        3,
    )
    make = lambda seed: training_dataset(
        examples,
        SPEC,
        4,
        16,
        InputConfig(deterministic=True, shuffle_buffer=32),
        seed=seed,
        cache=MEMORY,
        policy=policy(),
    )
    keras.utils.set_random_seed(3)
    first = _digest(make(3))
    keras.utils.set_random_seed(3)
    assert _digest(make(3)) == first
    keras.utils.set_random_seed(3)
    assert _digest(make(4)) != first


def test_alternating_flips_show_every_image_both_ways_in_two_passes_of_an_endless_stream(tmp_path):
    labels = [i % 4 for i in range(40)]
    policy = build_policy(AugmentConfig(policy=(AugmentOpConfig("flip_alternating"),)), 5)
    ds = training_dataset(
        _examples(tmp_path, labels), SPEC, 4, 16, InputConfig(), 0, MEMORY, policy, num_images=40, endless=True
    )
    ways: dict[int, list[bool]] = {}  # image id -> mirrored, over 5 batches of 16: two passes of 40
    for x, y in ds.take(5):
        raw = np.round(x.numpy() * 255).astype(int)
        ids = raw[:, 1, 1, 0]  # the fill value, the same both ways round
        corner = np.stack([np.zeros(len(ids), int), y.numpy().argmax(axis=1), np.full(len(ids), 7)], axis=1)
        for image, mirrored in zip(ids, ~np.all(raw[:, 0, 0] == corner, axis=1), strict=True):
            ways.setdefault(int(image), []).append(bool(mirrored))
    assert sorted(ways) == list(range(40)) and all(len(w) == 2 for w in ways.values())  # once a pass
    assert all(w[0] != w[1] for w in ways.values())  # mirrored in one pass, not in the other
    assert 5 < sum(w[0] for w in ways.values()) < 35
    with pytest.raises(ValueError, match="needs an endless stream"):
        training_dataset(tmp_path, SPEC, 4, 16, InputConfig(), 0, MEMORY, policy, num_images=40)


def test_class_weights_ride_along_as_sample_weights(tmp_path):
    labels = [0] * 30 + [1] * 10
    counts = {"a": 30, "b": 10}
    weights = balancing_weights(counts, ["a", "b"])
    assert weights == pytest.approx([40 / 60, 40 / 20])
    ds = training_dataset(
        _examples(tmp_path, labels), SPEC, 2, 8, InputConfig(), seed=0, cache=MEMORY, class_weights=weights
    )
    for _, y, w in ds:
        np.testing.assert_allclose(w.numpy(), np.array(weights)[np.argmax(y.numpy(), axis=1)], rtol=1e-6)


def test_resampling_balances_the_stream(tmp_path):
    labels = [0] * 90 + [1] * 10
    frequencies = class_frequencies({"a": 90, "b": 10}, ["a", "b"])
    ds = training_dataset(
        _examples(tmp_path, labels),
        SPEC,
        2,
        20,
        InputConfig(shuffle_buffer=100),
        seed=0,
        cache=MEMORY,
        resample_from=frequencies,
    )
    seen = np.concatenate([y.numpy().argmax(axis=1) for _, y in ds.take(40)])
    assert seen.mean() == pytest.approx(0.5, abs=0.08)


def test_every_model_facing_pipeline_runs_without_the_autotuning_thread(tmp_path):
    """Deleting an iterator whose autotuning thread sleeps waited out the sleep (BENCHMARKS.md
    "The fit pause"), so no pipeline a model or client reads starts that thread."""
    from visionpipe.components.common.dataset import image_dataset
    from visionpipe.data.records import encoded_images

    examples = _examples(tmp_path, [i % 3 for i in range(20)])
    pipelines = {
        "train": training_dataset(examples, SPEC, 3, 8, InputConfig(), seed=1, cache=MEMORY),
        "deterministic train": training_dataset(examples, SPEC, 3, 8, InputConfig(deterministic=True), 1, MEMORY),
        "evaluation": image_dataset(examples, "train", SPEC, 3, 8),
        "client": encoded_images(examples, "train", 8),
    }
    for name, ds in pipelines.items():
        assert ds.options().autotune.enabled is False, name
        assert sum(int(batch[0].shape[0]) for batch in ds) == 20, name  # and AUTOTUNE still runs
    assert pipelines["train"].options().deterministic is False
    assert pipelines["evaluation"].options().deterministic is True
