"""The EMA of the weights (components/train/ema.py): its warm-up, what it averages, that it is
useful after a few epochs of 4 steps where Keras' own EMA is not, and that a resumed run goes on
with the same average."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.ema import EMAWeights, decay_per_step, swap, warmed_up_decay
from visionpipe.components.train.recipe import make_optimizer

RECIPE = {"learning_rate": 0.01, "warmup_epochs": 0, "schedule": "constant", "weight_decay": 1e-6}


def test_the_decay_is_set_in_epochs_and_warms_up():
    assert decay_per_step(2, 4) == 0.875 and decay_per_step(1, 1000) == pytest.approx(0.999)
    assert decay_per_step(0.5, 2) == 0.0  # a horizon under two steps: the raw weights
    decays = [float(warmed_up_decay(0.99, t)) for t in (0, 1, 8, 80, 10_000)]
    assert decays == pytest.approx([0.0, 2 / 11, 9 / 18, 81 / 90, 0.99])


def _stripes(n: int, ones: int, seed: int):
    """12x12 images of horizontal (class 1) or vertical (class 0) stripes in noise."""
    rng = np.random.default_rng(seed)
    labels = np.array([1] * ones + [0] * (n - ones))
    rng.shuffle(labels)
    x = rng.normal(0.5, 0.15, (n, 12, 12, 3)).astype("float32")
    stripes = (np.arange(12) % 4 < 2).astype("float32") * 0.3
    x[labels == 1] += stripes[None, :, None, None]
    x[labels == 0] += stripes[None, None, :, None]
    return x, keras.utils.to_categorical(labels, 2)


def _cnn():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)  # as the registry's small_cnn and resnet9
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _val_accuracy(warm_up: bool, epochs: int = 8) -> dict[str, np.ndarray]:
    """Val accuracy per epoch, trained on 64 images in batches of 16 (4 steps per epoch).
    ``warm_up`` False is the recipe before: Keras' EMA at 0.99 per step, with SwapEMAWeights."""
    keras.utils.set_random_seed(0)
    x, y = _stripes(64, 32, seed=0)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    val = tf.data.Dataset.from_tensor_slices(_stripes(64, 24, seed=1)).batch(32)  # majority rate 0.625
    model = _cnn()
    optimizer = make_optimizer(TrainConfig(ema_epochs=2 if warm_up else 0, **RECIPE), model, epochs * 4, 4)
    if warm_up:
        callbacks = [EMAWeights(val)]
    else:  # the same optimizer, with Keras' EMA as train.ema_momentum: 0.99 set it
        optimizer.use_ema, optimizer.ema_momentum = True, 0.99
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
    model.compile(optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)
    history = history.history
    return {k: np.array(v) for k, v in history.items()}


def test_the_average_validates_as_well_as_the_raw_weights_within_a_few_epochs():
    history = _val_accuracy(warm_up=True)
    averaged, raw = history["val_accuracy"], history["raw_val_accuracy"]
    assert raw[-3:].min() >= 0.95, raw  # the raw weights learn the stripes by epoch 5 of 8 (20 steps)
    assert (averaged[-3:] >= raw[-3:] - 0.03).all(), (averaged, raw)  # epochs 6-8: within 2 images
    # Keras' EMA would fail it: at 0.99 per step it is mostly the first steps' weights after 32
    # steps, and never beats the majority class. Its raw weights are the same as above (an
    # average never changes the raw weights' path).
    before = _val_accuracy(warm_up=False)["val_accuracy"]
    assert not (before[-3:] >= raw[-3:] - 0.03).any() and before.max() <= 0.625, before


def _dense_bn(momentum: float):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum, name="norm")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def test_every_step_updates_the_average_of_the_weights_and_of_the_batchnorm_statistics():
    keras.utils.set_random_seed(0)
    model = _dense_bn(momentum=0.9)
    model.compile(make_optimizer(TrainConfig(ema_epochs=1, **RECIPE), model, 12, steps_per_epoch=4), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append([np.array(v) for v, _ in model.optimizer.averaged()])
    )
    x, y = np.random.default_rng(0).random((32, 4)), np.random.default_rng(1).random((32, 2))
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[record])
    pairs = model.optimizer.averaged()
    assert {v.path for v, _ in pairs} == {v.path for v in model.weights}  # with BatchNorm's statistics
    # The averages are the optimizer's state (saved in every backup); the model's variables are not.
    assert {id(a) for _, a in pairs} <= {id(v) for v in model.optimizer.variables}
    assert not {id(v) for v in model.weights} & {id(v) for v in model.optimizer.variables}
    expected = seen[0]
    for t, values in enumerate(seen[1:], start=1):
        decay = min(0.75, (1 + t) / (10 + t))  # 1 epoch of 4 steps: 0.75
        expected = [decay * e + (1 - decay) * v for e, v in zip(expected, values, strict=True)]
    for (_, average), want in zip(pairs, expected, strict=True):
        np.testing.assert_allclose(np.array(average), want, rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_are_those_of_the_averaged_weights():
    """Validated and exported, the averaged model normalises with statistics close to those of
    its own activations; the raw model's statistics (which Keras' EMA kept) are far from them."""
    keras.utils.set_random_seed(0)
    model = _dense_bn(momentum=0.0)  # the moving statistics are the last batch's
    config = TrainConfig(ema_epochs=8, **{**RECIPE, "learning_rate": 0.05})
    model.compile(make_optimizer(config, model, 40, steps_per_epoch=1), loss="mse")
    x, y = np.random.default_rng(0).normal(2, 1, size=(64, 4)), np.random.default_rng(1).normal(3, 1, size=(64, 2))
    model.fit(x, y, batch_size=64, epochs=40, shuffle=False, verbose=0, callbacks=[EMAWeights()])
    # Without a val split EMAWeights leaves the average in the model: what is exported.
    activations = keras.Model(model.input, model.get_layer("dense").output).predict(x, verbose=0)
    norm = model.get_layer("norm")
    averaged = np.array(norm.moving_mean), np.array(norm.moving_variance)
    swap(model.optimizer.averaged())  # the raw weights and their statistics
    raw = np.array(norm.moving_mean), np.array(norm.moving_variance)
    for own, kept, before in zip((activations.mean(0), activations.var(0)), averaged, raw, strict=True):
        # Averaged, they are off by one step's lag (step t's statistics come from the weights before it).
        assert np.abs(kept - own).max() < 0.5 * np.abs(before - own).max(), (own, kept, before)


def test_a_resumed_run_goes_on_with_the_same_average(tmp_path):
    def fit(backup, epochs, stop_at=None):
        keras.utils.set_random_seed(0)
        model = _dense_bn(momentum=0.9)
        model.compile(make_optimizer(TrainConfig(ema_epochs=1, **RECIPE), model, 24, steps_per_epoch=4), loss="mse")
        callbacks = [keras.callbacks.BackupAndRestore(str(backup)), EMAWeights()]
        if stop_at is not None:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: _kill(e == stop_at)))
        x, y = np.random.default_rng(0).random((32, 4)), np.random.default_rng(1).random((32, 2))
        model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
        return model

    whole = fit(tmp_path / "whole", 6)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "killed", 6, stop_at=3)  # killed after 3 epochs' backup
    resumed = fit(tmp_path / "killed", 6)
    # Both end on the average: equal only if the resumed run restored it with the backup.
    for got, want in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _kill(now: bool) -> None:
    if now:
        raise KeyboardInterrupt
