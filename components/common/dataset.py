"""The model-facing tf.data pipelines over the ingested records: the primitives train, evaluate
and export share (reading the record files is ``data/records.py``).

Images go through ``models.preprocessing`` (the same code as the serving signature). Files
are read by a parallel interleave and decoded by a parallel map. ``deterministic=False``
lets both hand out whichever element is ready first, which keeps the cores busy; evaluation
and the deterministic training mode keep the file order. Labels come out one-hot so label
smoothing and mixing augmentations work; multi-label images' labels come out multi-hot (a 1
for each label the image carries), which the same code carries unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tensorflow as tf

from visionpipe.data import record_format
from visionpipe.data.records import prefetched, serialized_records
from visionpipe.models.preprocessing import PreprocessingSpec, load_pixels, to_float

AUTOTUNE = tf.data.AUTOTUNE
DECODE_BATCH = 128


def pixels(
    examples_dir: Path,
    split: str,
    spec: PreprocessingSpec,
    shuffle_files: bool = False,
    seed: int | None = None,
    deterministic: bool = True,
    num_images: int | None = None,
    multi_hot: int = 0,
) -> tf.data.Dataset:
    """(uint8 image fitted to the spec, label id) pairs: the compact form worth caching.
    ``multi_hot`` > 0: multi-label records, whose labels come out as uint8 multi-hot vectors of
    that many labels.

    Records are parsed and decoded DECODE_BATCH at a time (one parallel map call loops over
    them with ``tf.map_fn``), then split back into single images for caching and shuffling.
    That is about twice as fast as a map call per image, whose fixed cost is comparable to
    decoding a 32x32 JPEG.

    ``num_images`` (the split's count from ingest) makes the length known, so Keras sizes its
    epochs from the start, and a split whose files hold another number of images fails loudly.
    """

    features = record_format.tf_parse_spec(multi_label=multi_hot > 0)

    def decode_batch(serialized):
        parsed = tf.io.parse_example(serialized, features)
        images = tf.map_fn(
            lambda data: load_pixels(data, spec),
            parsed[record_format.ENCODED],
            fn_output_signature=tf.TensorSpec(spec.input_shape, tf.uint8),
        )
        labels = parsed[record_format.LABEL]
        if multi_hot:
            labels = tf.cast(tf.sparse.to_indicator(labels, multi_hot), tf.uint8)
        return images, labels

    ds = (
        serialized_records(examples_dir, split, shuffle_files, seed, deterministic)
        .batch(DECODE_BATCH)
        .map(decode_batch, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        .unbatch()
    )
    return ds if num_images is None else ds.apply(tf.data.experimental.assert_cardinality(num_images))


FILE_CACHE_DONE = "visionpipe-cache-complete"  # written into a file cache's folder once it holds every element


def file_cache_written(folder: str | Path) -> bool:
    """Whether ``cached`` wrote the file cache ``folder`` whole (a stopped write is not)."""
    return (Path(folder) / FILE_CACHE_DONE).is_file()


def cached(ds: tf.data.Dataset, cache: str | None) -> tf.data.Dataset:
    """``ds`` cached as ``cache`` says: None (not cached), "" (in memory) or a folder. A folder is
    written once, whole (``Dataset.save``, streamed: flat memory), and read from then on
    (``Dataset.load``), by this run and by later runs on the same data: the caller's folder
    name is the cache's key (``input_pipeline.choose_cache``: the data version and the
    preprocessing).

    Not ``Dataset.cache(filename)``: while it writes, tf.data's file cache kept about as much
    memory as the data it wrote (RSS +2.3 GB over 800,000 32x32 images, TF 2.21). Not
    ``Dataset.snapshot`` either: it keys its files by a fingerprint of the pipeline's graph,
    which came out different from one build of the same pipeline to the next about half the
    time here, so a new run often wrote the whole cache again beside the old one.
    A folder without ``FILE_CACHE_DONE`` (a save that was stopped) is written again; ``visionpipe
    gc`` removes such folders.
    """
    if cache is None:
        return ds
    if cache == "":
        return ds.cache()
    folder = Path(cache)
    if not file_cache_written(cache):
        if folder.exists():
            shutil.rmtree(folder)
        # One shard, one writer: the default writes a shard per core and buffered each (RSS +20 MB
        # over 80,000 32x32 images against 3 MB).
        ds.save(str(folder), shard_func=lambda *_: tf.constant(0, tf.int64))
        (folder / FILE_CACHE_DONE).touch()
    return tf.data.Dataset.load(str(folder), element_spec=ds.element_spec)


def float_batch(images: tf.Tensor, labels: tf.Tensor, num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of uint8 images and label ids (or multi-hot vectors) -> (float images in [0, 1],
    one-hot (or multi-hot) float labels)."""
    if labels.shape.rank == 2:  # multi-hot already
        return to_float(images), tf.cast(labels, tf.float32)
    return to_float(images), tf.one_hot(labels, num_classes)


def image_dataset(
    examples_dir: Path,
    split: str,
    spec: PreprocessingSpec,
    num_classes: int,
    batch_size: int,
    cache: str | None = None,
    num_images: int | None = None,
    multi_label: bool = False,
) -> tf.data.Dataset:
    """Batches of (images in [0, 1], one-hot labels; multi-hot for ``multi_label`` records) in
    file order, for evaluation.

    ``cache`` is None (no cache), "" (memory) or a cache folder, as ``cached`` takes it.
    """
    ds = pixels(examples_dir, split, spec, num_images=num_images, multi_hot=num_classes if multi_label else 0)
    ds = cached(ds, cache)
    return prefetched(
        ds.batch(batch_size).map(lambda x, y: float_batch(x, y, num_classes), num_parallel_calls=AUTOTUNE)
    )
