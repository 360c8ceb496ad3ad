"""train.optimizer muon: Keras' Muon step for convolution and dense kernels, AdamW for the rest."""

from __future__ import annotations

import keras
import numpy as np

from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.muon import muon_kernels
from visionpipe.components.train.recipe import make_optimizer


def _cnn() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _muon(model: keras.Model, **train) -> keras.optimizers.Optimizer:
    config = TrainConfig(optimizer="muon", schedule="constant", warmup_epochs=0, weight_decay=0.0, **train)
    return make_optimizer(config, model, total_steps=10, steps_per_epoch=10)


def test_convolution_and_hidden_dense_kernels_take_muon_the_head_and_the_rest_adamw():
    model = _cnn()
    assert [v.path for v in muon_kernels(model)] == ["conv/kernel", "hidden/kernel"]
    optimizer = _muon(model)
    optimizer.build(model.trainable_variables)
    adamw = {v.path for v in model.trainable_variables if optimizer._should_use_adamw(v)}
    assert adamw == {
        "norm/gamma", "norm/beta", "depthwise/kernel", "depthwise/bias", "hidden/bias", "head/kernel", "head/bias"
    }  # fmt: skip


def test_a_convolution_kernels_update_is_its_matrix_orthogonalised():
    """One step from zero momentum: the kernel moves by lr x Keras' Newton-Schulz of the
    [h*w*in, out] gradient (x its RMS scale), so the moved matrix has near-equal singular values,
    whatever the gradient's were."""
    keras.utils.set_random_seed(0)
    model = _cnn()
    learning_rate = 0.01
    optimizer = _muon(model, learning_rate=learning_rate, momentum=0.0)
    kernel = model.get_layer("conv").kernel
    before = np.array(kernel)
    uneven_columns = np.arange(1, 9)
    gradient = (np.random.default_rng(0).normal(size=kernel.shape) * uneven_columns).astype("float32")
    grads = [gradient if v is kernel else np.zeros(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    step = (before - np.array(kernel)).reshape(-1, 8)
    matrix = keras.ops.convert_to_tensor(gradient.reshape(-1, 8))
    expected = optimizer.lr_adjust(learning_rate * optimizer.zeropower_via_newtonschulz5(matrix, 5))
    np.testing.assert_allclose(step, np.array(expected), rtol=1e-4, atol=1e-7)
    raw = np.linalg.svd(gradient.reshape(-1, 8), compute_uv=False)
    moved = np.linalg.svd(step, compute_uv=False)
    assert raw.max() / raw.min() > 4 and moved.max() / moved.min() < 2  # Newton-Schulz: roughly equal


def test_muon_trains_a_cnn():
    keras.utils.set_random_seed(0)
    model = _cnn()
    model.compile(_muon(model, learning_rate=0.01), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 3)).astype("float32")
    y = keras.utils.to_categorical(x.mean(axis=(1, 2)).argmax(axis=1), 3)  # the brightest channel
    losses = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0]
