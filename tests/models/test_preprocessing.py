"""One preprocessing path: the training input pipeline and the serving signature agree."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.export.saved_model import export_saved_model
from visionpipe.components.train.config import InputConfig
from visionpipe.components.train.input_pipeline import CacheChoice, training_dataset
from visionpipe.models.preprocessing import RESIZE_POLICIES, PreprocessingSpec, load_image
from visionpipe.serving.served_signature import load_signature
from visionpipe.serving.signature import PREPROCESS_SIGNATURE


def _write_examples(folder, encoded: list[bytes], split: str = "test"):
    (folder / split).mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / split / "data-00000-of-00001.tfrecord")) as writer:
        for i, data in enumerate(encoded):
            writer.write(
                tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                            "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
                            "image/source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{i}".encode()])),
                        }
                    )
                ).SerializeToString()
            )


def _encoded(size, fmt, mode="RGB"):
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
def test_training_path_and_serving_signature_give_the_same_tensor(tmp_path, policy):
    spec = PreprocessingSpec(
        height=24, width=16, channels=3, resize_policy=policy, mean=(0,) * 3, std=(1,) * 3, crop_fraction=0.8
    )
    encoded = [_encoded((40, 30), "JPEG"), _encoded((13, 50), "PNG"), _encoded((16, 24), "PNG", "L")]
    # the training pipeline proper: cached 8-bit pixels, shuffled, scaled per batch
    _write_examples(tmp_path / "examples", encoded, split="train")
    trained = training_dataset(
        tmp_path / "examples", spec, 1, 8, InputConfig(), seed=0, cache=CacheChoice("memory", "", 0.0, "test")
    )
    train_by_size = sorted(x.numpy().tobytes() for batch, _ in trained for x in batch)
    _write_examples(tmp_path / "examples", encoded)
    train_images = np.concatenate([x.numpy() for x, _ in image_dataset(tmp_path / "examples", "test", spec, 1, 8)])

    inputs = keras.Input(spec.input_shape)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    export_saved_model(model, spec, ["a", "b"], tmp_path / "sm")
    served = load_signature(tmp_path / "sm", PREPROCESS_SIGNATURE)(image_bytes=tf.constant(encoded))["images"].numpy()
    probabilities = load_signature(tmp_path / "sm")(image_bytes=tf.constant(encoded))["probabilities"].numpy()

    assert train_images.shape == (3, 24, 16, 3)
    np.testing.assert_array_equal(served, train_images)
    assert sorted(x.tobytes() for x in served) == train_by_size
    assert 0.0 <= served.min() and served.max() <= 1.0
    np.testing.assert_allclose(probabilities, model.predict(train_images, verbose=0), atol=1e-6)


def test_crop_keeps_aspect_ratio_and_pad_adds_borders():
    wide = tf.ones([10, 40, 1])
    padded = load_image(
        tf.io.encode_png(tf.cast(wide * 255, tf.uint8)), PreprocessingSpec(20, 20, 1, "pad", (0,), (1,))
    ).numpy()
    assert padded[0, 10, 0] == 0.0 and padded[10, 10, 0] == pytest.approx(1.0)
    cropped = load_image(
        tf.io.encode_png(tf.cast(wide * 255, tf.uint8)), PreprocessingSpec(20, 20, 1, "crop", (0,), (1,))
    ).numpy()
    assert cropped.min() == pytest.approx(1.0)


def test_center_crop_keeps_the_central_fraction_and_right_sized_images_pass_through():
    frame = np.zeros([40, 40, 1], np.uint8)
    frame[4:36, 4:36] = 255  # a white square with a black border of 10% per side
    encoded = tf.io.encode_png(frame)
    center = load_image(encoded, PreprocessingSpec(20, 20, 1, "center_crop", (0,), (1,), crop_fraction=0.6)).numpy()
    assert center.min() == pytest.approx(1.0)  # the border is gone
    assert load_image(encoded, PreprocessingSpec(20, 20, 1, "crop", (0,), (1,))).numpy().min() == 0.0
    for policy in RESIZE_POLICIES:  # already the target size: bit-exact pixels / 255
        same = load_image(encoded, PreprocessingSpec(40, 40, 1, policy, (0,), (1,))).numpy()
        np.testing.assert_array_equal(same, frame / np.float32(255))
