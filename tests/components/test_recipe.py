"""The training recipe: schedules, the learning rate scaled to the global batch, weight decay and
learning-rate scaling per variable, Lookahead, the layers that schedule or initialise
themselves, and test-time augmentation."""

import typing

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.components.evaluate.config import EvaluateConfig
from visionpipe.components.train.augment import OPS
from visionpipe.components.train.callbacks import LayerEpochHooks, Lookahead
from visionpipe.components.train.config import AugmentOp, TrainConfig
from visionpipe.components.train.recipe import make_loss, make_optimizer
from visionpipe.components.train.schedules import SCHEDULES, WarmupSchedule
from visionpipe.models.layers import custom_layers
from visionpipe.models.tta import TTA_MODES, tta_predict


def test_config_choices_are_the_implemented_ones():
    assert typing.get_args(typing.get_type_hints(TrainConfig)["schedule"]) == SCHEDULES
    for loss in typing.get_args(typing.get_type_hints(TrainConfig)["loss"]):
        assert isinstance(make_loss(TrainConfig(loss=loss), multi_label=True), keras.losses.Loss)
        if loss != "asymmetric":  # for multi-label data only (tests/components/test_losses.py)
            assert isinstance(make_loss(TrainConfig(loss=loss)), keras.losses.Loss)
    assert typing.get_args(typing.get_type_hints(EvaluateConfig)["tta"]) == TTA_MODES
    assert typing.get_args(AugmentOp) == tuple(OPS)  # the config's names are the built ones, in order


def lrs(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_schedules_warm_up_then_follow_their_shape():
    cosine = WarmupSchedule(1.0, total_steps=110, warmup_steps=10, kind="cosine", final_fraction=0.1)
    np.testing.assert_allclose(lrs(cosine, [0, 4, 9]), [0.1, 0.5, 1.0], rtol=1e-5)
    np.testing.assert_allclose(lrs(cosine, [10, 60, 110]), [1.0, 0.55, 0.1], rtol=1e-5)
    # airbench's one-cycle: 0.2 -> 1 over 23% of the steps, then linearly down to 0.07
    onecycle = WarmupSchedule(2.0, 100, 23, "onecycle", start_fraction=0.2, final_fraction=0.07)
    assert float(onecycle(0)) == pytest.approx(2.0 * (0.2 + 0.8 / 23))
    np.testing.assert_allclose(lrs(onecycle, [22, 23, 100]), [2.0, 2.0, 0.14], rtol=1e-5)
    assert float(onecycle(61)) == pytest.approx(2.0 * (1 + (0.07 - 1) * (61 - 23) / 77), rel=1e-5)
    step = WarmupSchedule(1.0, 100, 0, "step", milestones=(0.5, 0.75), gamma=0.1)
    np.testing.assert_allclose(lrs(step, [0, 49, 50, 74, 75, 99]), [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-5)
    assert lrs(WarmupSchedule(0.3, 100, 0, "constant"), [0, 50, 99]).tolist() == pytest.approx([0.3] * 3)
    restored = WarmupSchedule.from_config(onecycle.get_config())
    assert float(restored(61)) == float(onecycle(61))


def test_the_optimizer_peaks_at_the_learning_rate_scaled_to_the_global_batch():
    config = TrainConfig(
        batch_size=2048, learning_rate=0.1, learning_rate_scaling="linear", learning_rate_batch=512, warmup_epochs=0
    )
    optimizer = make_optimizer(config, _bn_model(), total_steps=10, steps_per_epoch=10)
    assert float(optimizer.learning_rate) == pytest.approx(0.4)


def _bn_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def test_weight_decay_skips_biases_and_norm_parameters():
    model = _bn_model()
    optimizer = make_optimizer(TrainConfig(weight_decay=0.1), model, total_steps=10, steps_per_epoch=10)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"dense/kernel", "out/kernel"}
    everything = make_optimizer(TrainConfig(weight_decay=0.1, decay_norm_and_bias=True), model, 10, 10)
    everything.build(model.trainable_variables)
    assert all(everything._use_weight_decay(v) for v in model.trainable_variables)


def test_norm_shifts_can_learn_faster():
    changes = {}
    for scale in (1.0, 64.0):
        keras.utils.set_random_seed(0)
        model = _bn_model()
        config = TrainConfig(
            optimizer="sgd",
            momentum=0.0,
            weight_decay=0.0,
            norm_bias_lr_scale=scale,
            schedule="constant",
            warmup_epochs=0,
            learning_rate=1e-3,
        )
        model.compile(make_optimizer(config, model, 10, 10), loss="mse")
        before = {v.path: np.array(v) for v in model.trainable_variables}
        model.fit(np.ones((8, 4)), np.zeros((8, 2)), batch_size=8, epochs=1, verbose=0)
        changes[scale] = {v.path: np.abs(np.array(v) - before[v.path]).sum() for v in model.trainable_variables}
    assert changes[64.0]["norm/beta"] == pytest.approx(64 * changes[1.0]["norm/beta"], rel=1e-4)
    assert changes[64.0]["dense/kernel"] == pytest.approx(changes[1.0]["dense/kernel"], rel=1e-4)


@pytest.mark.parametrize("decay, ends_at", [(1.0, "start"), (0.0, "trained")])
def test_lookahead_moves_the_weights_to_their_slow_average(decay, ends_at):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    start = model.get_weights()
    x, y = np.random.default_rng(0).random((32, 3)), np.ones((32, 1))
    plain = keras.models.clone_model(model)
    plain.set_weights(start)
    plain.compile(keras.optimizers.SGD(0.1), loss="mse")
    plain.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    # power 0: the averaging weight is decay^every at every update
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Lookahead(2, decay, 0.0, 8)])
    expected = start if ends_at == "start" else plain.get_weights()
    for got, want in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain.get_weights()[0], start[0])


def test_whitening_layer_whitens_patches_and_freezes_its_bias_after_its_epochs():
    layer = custom_layers(keras).Whitening(24, 2, bias_epochs=3)
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, 3))
    images = (rng.normal(size=(64, 16, 16, 3)) @ mixing).astype(np.float32)  # correlated channels
    layer(images[:1])
    layer.adapt_from_data(images)
    out = np.asarray(layer(images)).reshape(-1, 24)[:, :12]  # the 12 eigen-filters (the rest: negatives)
    covariance = out.T @ out / len(out)
    np.testing.assert_allclose(covariance, np.eye(12), atol=0.05)
    model = keras.Sequential([keras.Input((16, 16, 3)), layer])
    hooks = LayerEpochHooks()
    hooks.set_model(model)
    hooks.on_epoch_begin(2)
    assert float(layer.bias_trainable) == 1.0
    hooks.on_epoch_begin(3)
    assert float(layer.bias_trainable) == 0.0


def test_test_time_augmentation_averages_views():
    images = tf.random.stateless_uniform([2, 8, 8, 3], seed=(1, 2))

    def predict(x):  # not flip-invariant: depends on the left column
        return tf.stack([tf.reduce_mean(x[:, :, 0], axis=[1, 2]), tf.reduce_mean(x[:, :, -1], axis=[1, 2])], 1)

    flipped = tta_predict(predict, images, "flip")
    expected = 0.5 * (predict(images) + predict(tf.reverse(images, [2])))
    np.testing.assert_allclose(flipped, expected, rtol=1e-6)
    assert not np.allclose(flipped, predict(images))
    constant = tf.fill([1, 8, 8, 3], 0.3)  # every view of it is the same image
    np.testing.assert_allclose(tta_predict(predict, constant, "flip_translate"), predict(constant), rtol=1e-6)


def test_focal_loss_weighs_easy_images_down_and_is_the_cross_entropy_at_gamma_0():
    labels = np.eye(3, dtype=np.float32)[[0, 1]]
    probabilities = np.array([[0.95, 0.03, 0.02], [0.4, 0.3, 0.3]], np.float32)  # easy, hard

    def per_image(train):
        loss = make_loss(train)
        return np.array([float(loss(labels[i : i + 1], probabilities[i : i + 1])) for i in range(2)])

    cross_entropy = per_image(TrainConfig())
    np.testing.assert_allclose(cross_entropy, -np.log([0.95, 0.3]), rtol=1e-5)
    np.testing.assert_allclose(per_image(TrainConfig(loss="focal", focal_gamma=0.0)), cross_entropy, rtol=1e-5)
    focal = per_image(TrainConfig(loss="focal", focal_gamma=2.0))
    np.testing.assert_allclose(focal, (1 - np.array([0.95, 0.3])) ** 2 * cross_entropy, rtol=1e-4)
    assert focal[0] / focal[1] < cross_entropy[0] / cross_entropy[1] / 50  # the easy image all but drops out


def test_a_negative_focal_gamma_is_refused():
    from visionpipe.pipeline.typed_tree import ConfigError

    with pytest.raises(ConfigError, match="train.focal_gamma"):
        TrainConfig(loss="focal", focal_gamma=-1.0)
