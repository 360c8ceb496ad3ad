"""One streamed, batched pass over every split: the trained model's penultimate-layer
embeddings, its own probabilities, the label, source path, a perceptual hash and a small
grayscale thumbnail of each image.

The penultimate layer is found generically: the input of the last Dense layer whose width is
the number of classes (the classification head), inside nested models too (the classifier
wraps the registered network; ViTs, CNNs and ImageNet backbones all end in such a Dense).
Images are decoded and fitted by ``models.preprocessing`` as training fits them; only the
embeddings (N x D floats) and 4 KB thumbnails are kept, never the decoded images, so memory
grows by about D x 4 + 4 KB an image, whatever the photos' size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from visionpipe.components.data_quality.alignment import THUMBNAIL
from visionpipe.data import record_format
from visionpipe.data.records import prefetched, records
from visionpipe.models.preprocessing import PreprocessingSpec, load_pixels, to_float

HASH_SIZE = 8  # dHash: 8 x 9 gray cells, one bit per horizontal neighbour pair -> 64 bits


@dataclasses.dataclass
class Embedded:
    """What the pass read from every split, in record order (splits one after another)."""

    embeddings: np.ndarray  # float32 [N, D]: the penultimate layer's output
    probabilities: np.ndarray  # float32 [N, classes]: the trained model's own predictions
    labels: np.ndarray  # int64 [N]: the given label ids; multi-label: multi-hot [N, labels]
    splits: np.ndarray  # str [N]
    sources: list[str]  # where the user had each image (the record's source path)
    index_in_split: np.ndarray  # int64 [N]: the record's position in its split
    hashes: np.ndarray  # uint64 [N]: 64-bit difference hash of the decoded image
    thumbnails: np.ndarray  # uint8 [N, THUMBNAIL, THUMBNAIL]: grayscale, squeezed to a square (alignment.py)

    def __len__(self) -> int:
        return len(self.labels)


def classification_head(model: keras.Model, num_classes: int) -> tuple[list[keras.Model], keras.layers.Layer]:
    """(the chain of nested models from ``model`` down to the one holding the head, the head):
    the last Dense layer with ``num_classes`` units. Raises ValueError naming the model when none."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Dense) and layer.units == num_classes:
            return [model], layer
        if isinstance(layer, keras.Model):
            try:
                chain, head = classification_head(layer, num_classes)
            except ValueError:
                continue
            return [model, *chain], head
    raise ValueError(
        f"model {model.name!r} has no Dense layer with {num_classes} units (one per class) to take the "
        "penultimate layer's embeddings from"
    )


def embedding_model(model: keras.Model, num_classes: int) -> keras.Model:
    """A model from the same inputs to [the head's input (the embedding), the model's output]."""
    chain, head = classification_head(model, num_classes)
    inner = keras.Model(chain[-1].inputs, [head.input, chain[-1].output])
    for outer, nested in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        # The nested model is called once in the outer graph: its input there is what feeds it.
        feeding = outer.get_layer(nested.name)._inbound_nodes[0].input_tensors
        features, _ = inner(feeding[0] if len(feeding) == 1 else feeding)
        inner = keras.Model(outer.inputs, [features, outer.output])
    return inner


def hash_and_thumbnail(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded image bytes -> (the 64-bit dHash of the decoded image, as int64: robust to resizing
    and recompression, unlike a hash of the bytes; its grayscale THUMBNAIL x THUMBNAIL thumbnail,
    uint8, for the pixel comparison that decides near-duplicates)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
    thumbnail = tf.image.resize(gray, (THUMBNAIL, THUMBNAIL), method="area")[..., 0]
    return _dhash(gray), tf.cast(tf.clip_by_value(tf.round(thumbnail), 0, 255), tf.uint8)


def _dhash(gray: tf.Tensor) -> tf.Tensor:
    cells = tf.image.resize(gray, (HASH_SIZE, HASH_SIZE + 1), method="area")[..., 0]
    bits = tf.reshape(tf.cast(cells[:, 1:] > cells[:, :-1], tf.int64), [-1])
    return tf.reduce_sum(bits * tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.range(64, dtype=tf.int64)))


def _split_batches(
    examples_dir: Path, split: str, spec: PreprocessingSpec, batch_size: int, multi_hot: int
) -> tf.data.Dataset:
    def fitted(record):
        encoded = record[record_format.ENCODED]
        return (
            to_float(load_pixels(encoded, spec)),
            record[record_format.LABEL],
            record[record_format.SOURCE],
            *hash_and_thumbnail(encoded),
        )

    return (
        records(examples_dir, split, multi_hot=multi_hot)
        .map(fitted, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .apply(prefetched)
    )


def embed_splits(
    model: keras.Model,
    examples_dir: Path,
    splits: dict[str, int],
    spec: PreprocessingSpec,
    num_classes: int,
    batch_size: int,
    progress=None,
    multi_label: bool = False,
) -> Embedded:
    """Every image of every split with images (split -> its count), through the model once."""
    network = embedding_model(model, num_classes)
    names = ("embeddings", "probabilities", "labels", "sources", "hashes", "thumbnails", "splits")
    columns: dict[str, list] = {k: [] for k in names}
    for split, count in splits.items():
        if not count:
            continue
        for images, labels, sources, hashes, thumbnails in _split_batches(
            examples_dir, split, spec, batch_size, num_classes if multi_label else 0
        ):
            features, probabilities = network.predict_on_batch(images)
            columns["embeddings"].append(np.asarray(features, np.float32).reshape(len(labels), -1))
            columns["probabilities"].append(np.asarray(probabilities, np.float32))
            columns["labels"].append(labels.numpy().astype(np.int64))
            # Absolute, so that findings.csv names the file wherever the next run starts (data.exclude).
            columns["sources"] += [record_format.located(s.decode()) for s in sources.numpy()]
            columns["hashes"].append(hashes.numpy().view(np.uint64))
            columns["thumbnails"].append(thumbnails.numpy())
            columns["splits"] += [split] * len(labels)
            if progress is not None:
                progress.advance(len(labels))
    splits_array = np.array(columns["splits"])
    index = np.zeros(len(splits_array), np.int64)
    for split in set(columns["splits"]):
        where = splits_array == split
        index[where] = np.arange(where.sum())
    return Embedded(
        embeddings=np.concatenate(columns["embeddings"]),
        probabilities=np.concatenate(columns["probabilities"]),
        labels=np.concatenate(columns["labels"]),
        splits=splits_array,
        sources=columns["sources"],
        index_in_split=index,
        hashes=np.concatenate(columns["hashes"]),
        thumbnails=np.concatenate(columns["thumbnails"]),
    )
