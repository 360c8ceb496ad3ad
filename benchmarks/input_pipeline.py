"""Training input pipeline throughput on an image folder, against two baselines, same run.

Contenders, all with the same augmentation policy (default: the CIFAR policy of
configs/cifar10.yaml, flip + translate) and batch size:

- keras directory: ``keras.utils.image_dataset_from_directory`` on the JPEG folder, the same
  augmentation layers mapped over its batches (baseline a);
- decode only: parallel read + parse + decode (+ resize to the model's input by the same
  policy, for photos of varying size) of visionpipe's TFRecords, batched, no augmentation,
  no cache (baseline b, the limit of reading);
- visionpipe epoch 1: the training pipeline's first pass (decodes and fills the cache);
- visionpipe cached: a later epoch, what training sees from epoch 2 on;
- heavy policies on later epochs: Keras RandAugment and visionpipe's FastRandAugment;
- training: the config's model fitted on one synthetic in-memory batch (the step rate the
  input pipeline must beat), then fed by the visionpipe pipeline with the default policy,
  with Keras RandAugment or FastRandAugment in tf.data, or FastRandAugment inside the model
  (how much each slows training down on this machine, where the CPU does both).

Each contender runs ``--repeats`` times, interleaved; medians and ratios are printed.

    python benchmarks/input_pipeline.py /tmp/cifar10/train --repeats 3
    python benchmarks/input_pipeline.py /tmp/caltech101/101_ObjectCategories --config configs/photos.yaml \
        --repeats 3 --images 6000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ratios import Rates

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent


def images_per_second(ds, limit: int) -> float:
    """Rate over ``limit`` images, timed from the first batch (set-up and warm-up excluded)."""
    iterator = iter(ds)
    next(iterator)
    start, seen = time.perf_counter(), 0
    for batch in iterator:
        seen += int(batch[0].shape[0])
        if seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def training_rate(model, ds, steps: int) -> float:
    """Images per second of ``model.fit`` in its second epoch of ``steps`` steps (the first traces)."""
    import keras

    class EpochSeconds(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochSeconds()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    model.fit(ds, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return steps * int(next(iter(ds))[0].shape[0]) / timer.seconds[-1]


def prepare(folder: Path, root: Path, config_path: Path):
    """Ingests and validates the folder (cached by the runner across benchmark runs)."""
    from visionpipe.config import load_config
    from visionpipe.run import run_pipeline

    config = load_config(config_path, [f"run.root={root}", f"data.path={folder}"])
    outputs = {}
    for stage in ("ingest", "validate"):
        result = run_pipeline(config, only=stage)
        assert result.ok, result.failure()
        outputs.update(result.outputs(stage))
    return config, outputs["examples"], outputs["statistics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of class sub-folders, e.g. /tmp/cifar10/train")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cifar10.yaml")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vp-bench-input",
        help="run root for the ingest (reused when the folder is unchanged)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=40000, help="images timed per light contender")
    parser.add_argument("--heavy-images", type=int, default=6000, help="images timed per RandAugment contender")
    parser.add_argument("--train-steps", type=int, default=40)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from visionpipe.components.common.dataset import AUTOTUNE, pixels
    from visionpipe.components.train.augment import build_policy
    from visionpipe.components.train.config import AugmentConfig, AugmentOpConfig
    from visionpipe.components.train.input_pipeline import choose_cache, training_dataset
    from visionpipe.components.train.spec import SPEC as TRAIN_SPEC
    from visionpipe.data import record_format
    from visionpipe.data.records import split_files
    from visionpipe.models.classifier import build_classifier, preprocessing_spec
    from visionpipe.models.preprocessing import load_pixels

    config, examples, statistics_artifact = prepare(args.folder, args.root, args.config)
    params = TRAIN_SPEC.params(config)
    spec = preprocessing_spec(params.preprocessing, statistics_artifact.pixel_mean, statistics_artifact.pixel_std)
    classes = examples.classes
    counts = statistics_artifact.counts
    batch = config.train.batch_size
    default_policy = build_policy(config.train.augment, config.seed)
    keras_rand_augment = build_policy(AugmentConfig(policy=(AugmentOpConfig("flip_horizontal"),)), config.seed)
    keras_rand_augment.image_layers.append(keras.layers.RandAugment(value_range=(0, 1), seed=config.seed))
    fast_rand_augment = build_policy(
        AugmentConfig(policy=(AugmentOpConfig("flip_horizontal"), AugmentOpConfig("rand_augment"))), config.seed
    )
    policy_names = ", ".join(step.op for step in config.train.augment.policy)
    print(f"{counts['train']} train images {spec.input_shape}, batch {batch}, policy: {policy_names}", flush=True)

    def keras_directory():  # the same resize policy, as far as Keras has one
        ds = keras.utils.image_dataset_from_directory(
            args.folder,
            image_size=spec.input_shape[:2],
            batch_size=batch,
            shuffle=True,
            seed=config.seed,
            verbose=False,
            crop_to_aspect_ratio=spec.resize_policy in ("crop", "center_crop"),
            pad_to_aspect_ratio=spec.resize_policy == "pad",
        )
        ds = ds.map(
            lambda x, y: default_policy.on_batch(x / 255.0, tf.one_hot(y, len(classes))),
            num_parallel_calls=AUTOTUNE,
            deterministic=False,
        )
        return ds.prefetch(AUTOTUNE)

    def decode_only():  # the idiomatic tf.data reader: one parallel map call per record
        files = tf.data.Dataset.from_tensor_slices(split_files(examples.path, "train"))
        ds = files.interleave(tf.data.TFRecordDataset, num_parallel_calls=AUTOTUNE, deterministic=False)
        # Only the two features a trainer needs, so the baseline parses no more than it must.
        features = {key: record_format.tf_parse_spec()[key] for key in (record_format.ENCODED, record_format.LABEL)}

        def parse_and_decode(serialized):
            parsed = tf.io.parse_single_example(serialized, features)
            return load_pixels(parsed[record_format.ENCODED], spec), parsed[record_format.LABEL]

        return (
            ds.map(parse_and_decode, num_parallel_calls=AUTOTUNE, deterministic=False).batch(batch).prefetch(AUTOTUNE)
        )

    def visionpipe_decode():  # visionpipe's reader, batched decode, no cache and no augmentation
        ds = pixels(examples.path, "train", spec, deterministic=False)
        return ds.batch(batch).prefetch(AUTOTUNE)

    cache = choose_cache(params.input, counts["train"], spec, args.root / "cache", examples.uri)

    def visionpipe(policy):
        return training_dataset(examples.path, spec, len(classes), batch, params.input, config.seed, cache, policy)

    def filled(policy):
        ds = visionpipe(policy)
        for _ in ds:  # the first epoch fills the cache
            pass
        return ds

    def epoch_one_and_cached():
        ds = visionpipe(default_policy)
        # The whole first epoch, timed from the start: its first batch waits for the shuffle
        # buffer, which may hold the whole split, so most of the decoding happens before it.
        start = time.perf_counter()
        seen = sum(int(images.shape[0]) for images, *_ in ds)
        return seen / (time.perf_counter() - start), images_per_second(ds, args.images)

    def in_model(policy):  # the train stage's wrapper for placement: model
        image = keras.Input(spec.input_shape)
        return keras.Model(image, model(keras.Sequential(policy.image_layers)(image)))

    model = build_classifier(spec, len(classes), config.model)
    synthetic = tf.data.Dataset.from_tensors(
        (tf.random.uniform([batch, *spec.input_shape]), tf.one_hot(tf.zeros([batch], tf.int32), len(classes)))
    ).repeat()
    light = min(args.images, counts["train"] - batch)
    rates = Rates()
    for repeat in range(args.repeats):
        measured = {
            "keras directory + policy (a)": images_per_second(keras_directory(), light),
            "decode only, TFRecords (b)": images_per_second(decode_only(), light),
            "visionpipe decode only (batched)": images_per_second(visionpipe_decode(), light),
        }
        measured["visionpipe epoch 1 + policy"], measured["visionpipe cached + policy"] = epoch_one_and_cached()
        measured["visionpipe cached, Keras RandAugment"] = images_per_second(
            filled(keras_rand_augment), args.heavy_images
        )
        measured["visionpipe cached, FastRandAugment"] = images_per_second(filled(fast_rand_augment), light)
        training = [
            ("training step, synthetic batch", lambda: training_rate(model, synthetic, args.train_steps)),
            (
                "training fed by visionpipe + policy",
                lambda: training_rate(model, filled(default_policy).repeat(), args.train_steps),
            ),
            (
                "training fed by visionpipe + Keras RandAugment",
                lambda: training_rate(model, filled(keras_rand_augment).repeat(), args.train_steps),
            ),
            (
                "training fed by visionpipe + FastRandAugment",
                lambda: training_rate(model, filled(fast_rand_augment).repeat(), args.train_steps),
            ),
            (
                "training, FastRandAugment inside the model",
                lambda: training_rate(in_model(fast_rand_augment), filled(None).repeat(), args.train_steps),
            ),
        ]
        # The machine drifts within minutes; rotating the order spreads the drift over all of them.
        for name, measure in training[repeat % len(training) :] + training[: repeat % len(training)]:
            measured[name] = measure()
        rates.add_repeat(repeat, measured)

    print(f"\nimages/s, medians of {args.repeats} repeats; model {config.model.name} {config.model.args}")
    print(
        rates.table(
            {
                "vs (a)": "keras directory + policy (a)",
                "vs (b)": "decode only, TFRecords (b)",
                "vs step": "training step, synthetic batch",
            }
        )
    )


if __name__ == "__main__":
    main()
