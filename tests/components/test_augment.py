"""Augmentation policies: every op runs where it is placed, probabilities hold, bad entries are named."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.components.train.augment import OPS, build_policy
from visionpipe.components.train.augment_layers import (
    AlternatingFlip,
    FastRandAugment,
    RandomApply,
    RandomResizedCrop,
)
from visionpipe.components.train.config import AugmentConfig, AugmentOpConfig
from visionpipe.pipeline.errors import UserError


def _batch(n=16, size=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.random((n, size, size, 3)), tf.float32)
    labels = tf.one_hot(rng.integers(0, classes, n), classes)
    return images, labels


def _policy(*steps, placement="data", seed=1):
    return build_policy(
        AugmentConfig(
            policy=tuple(AugmentOpConfig(**s) if isinstance(s, dict) else AugmentOpConfig(s) for s in steps),
            placement=placement,
        ),
        seed,
    )


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_changes_images_in_tf_data_and_keeps_shape_and_range(op):
    images, labels = _batch()
    policy = _policy(op)
    passes = tf.ones([len(images)], tf.int64)  # what flip_alternating needs; the other ops ignore it
    ds = tf.data.Dataset.from_tensors((images, labels, passes)).map(policy.on_batch)
    out_images, out_labels = next(iter(ds))
    assert out_images.shape == images.shape and out_labels.shape == labels.shape
    assert float(tf.reduce_min(out_images)) >= 0.0 and float(tf.reduce_max(out_images)) <= 1.0
    changed = np.abs(out_images.numpy() - images.numpy()).reshape(len(images), -1).max(axis=1) > 1e-4
    assert changed.any(), f"{op} left every image unchanged"
    np.testing.assert_allclose(out_labels.numpy().sum(axis=1), 1.0, rtol=1e-5)
    if OPS[op].mixes_labels:
        assert (np.count_nonzero(out_labels.numpy() > 1e-6, axis=1) == 2).any(), "no label was mixed"
    else:
        np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


def test_model_placement_moves_image_ops_into_the_model_and_keeps_mixers_in_tf_data():
    images, labels = _batch()
    policy = _policy("flip_vertical", "rand_augment", "mixup", placement="model")
    in_model = policy.in_model
    assert [type(layer) for layer in in_model.layers] == [keras.layers.RandomFlip, FastRandAugment]
    mixed_images, mixed_labels = policy.on_batch(images, labels)
    assert (np.count_nonzero(mixed_labels.numpy() > 1e-6, axis=1) == 2).any()
    inputs = keras.Input(images.shape[1:])
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(in_model(inputs)))
    np.testing.assert_allclose(
        model(images, training=False).numpy(), tf.reduce_mean(images, [1, 2]).numpy(), rtol=1e-5
    )  # inference passes images through untouched
    assert model(images, training=True).shape == (16, 3)


@pytest.mark.parametrize("probability", [0.0, 0.5])
def test_probability_is_per_image(probability):
    images, labels = _batch(n=256, size=8)
    out, _ = _policy({"op": "brightness", "magnitude": 0.5, "probability": probability}).on_batch(images, labels)
    changed = np.abs(out.numpy() - images.numpy()).reshape(256, -1).max(axis=1) > 1e-6
    assert changed.mean() == pytest.approx(probability, abs=0.1)


def test_random_apply_mixes_labels_only_for_the_images_it_picks():
    images, labels = _batch(n=64)
    layer = RandomApply(keras.layers.MixUp(alpha=1.0, seed=3), probability=0.5, seed=4)
    out = layer({"images": images, "labels": labels})
    image_changed = np.abs(out["images"].numpy() - images.numpy()).reshape(64, -1).max(axis=1) > 1e-6
    label_changed = np.abs(out["labels"].numpy() - labels.numpy()).max(axis=1) > 1e-6
    assert 0 < image_changed.sum() < 64
    assert not (label_changed & ~image_changed).any()


def test_fast_rand_augment_gives_the_keras_layer_result_for_the_same_draw():
    images, _ = _batch(n=8, size=16)
    fast = FastRandAugment(value_range=(0, 1), num_ops=2, factor=0.7, seed=5)
    reference = keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.7, seed=5)
    for draw in range(4):
        transformation = reference.get_random_transformation(images, training=True, seed=draw)
        np.testing.assert_allclose(
            fast.transform_images(images, transformation).numpy(),
            reference.transform_images(images, transformation).numpy(),
            atol=1e-5,
        )


def test_alternating_flip_shows_each_image_both_ways_over_any_two_passes():
    images, _ = _batch(n=256, size=8)
    mirror = images.numpy()[:, :, ::-1]

    def mirrored(seed: int, pass_number: int) -> np.ndarray:
        out = AlternatingFlip(seed)({"images": images, "passes": tf.fill([256], tf.constant(pass_number, tf.int64))})
        return np.all(out.numpy() == mirror, axis=(1, 2, 3))

    first = mirrored(1, 0)
    assert first.mean() == pytest.approx(0.5, abs=0.1)  # which images start mirrored: a hash of their pixels
    assert (mirrored(1, 1) == ~first).all() and (mirrored(1, 2) == first).all() and (mirrored(1, 7) == ~first).all()
    assert (mirrored(2, 0) != first).any()  # another seed, other images start mirrored
    unchanged = AlternatingFlip(1)({"images": images, "passes": tf.zeros([256], tf.int64)}, training=False)
    np.testing.assert_array_equal(unchanged.numpy(), images.numpy())


def test_a_policy_with_alternating_flips_needs_the_passes():
    images, labels = _batch()
    policy = _policy("flip_alternating", "translate")
    assert policy.needs_passes and not _policy("flip_horizontal").needs_passes
    with pytest.raises(ValueError, match="needs each image's pass number"):
        policy.on_batch(images, labels)


def test_random_resized_crop_keeps_size_and_full_area_is_identity():
    images, _ = _batch(n=4, size=20)
    np.testing.assert_allclose(RandomResizedCrop(1.0, seed=1)(images).numpy(), images.numpy(), atol=1e-6)
    cropped = RandomResizedCrop(0.2, seed=1)(images)
    assert cropped.shape == images.shape and not np.allclose(cropped.numpy(), images.numpy())


@pytest.mark.parametrize(
    "steps, message",
    [
        ([{"op": "flip_horizontal", "magnitude": 0.3}], r"policy\[0\] \(flip_horizontal\) takes no magnitude"),
        ([{"op": "rotate", "probability": 1.5}], r"policy\[0\] \(rotate\): probability must be between 0 and 1"),
        ([{"op": "zoom", "magnitude": -0.1}], r"policy\[0\] \(zoom\): magnitude .* must not be negative"),
        ([{"op": "random_resized_crop", "magnitude": 1.0}], r"magnitude .* must be below 1"),
        ([{"op": "rand_augment", "num_ops": 0}], r"rand_augment\): needs magnitude in 0..1 and num_ops >= 1"),
        (["mixup", "translate"], r"policy\[1\] \(translate\): image ops must come before mixup/cutmix"),
        (["translate", "flip_alternating"], r"policy\[1\] \(flip_alternating\): must be the policy's first op"),
        ([{"op": "flip_alternating", "probability": 0.5}], r"must be the policy's first op, with probability 1"),
    ],
)
def test_bad_policy_entries_are_named(steps, message):
    with pytest.raises(UserError, match=message):
        _policy(*steps)


def test_an_empty_policy_is_none():
    assert build_policy(AugmentConfig(), seed=0) is None
