"""train.loss: asymmetric (multi-label data): what each term weighs, that it reduces to the
binary cross-entropy, and that a model trains with it."""

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import COLORS, make_multi_label_set
from visionpipe.components.common.label_metrics import mean_ap
from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.losses import AsymmetricLoss
from visionpipe.components.train.recipe import build_and_compile, make_loss
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.errors import UserError

RNG = np.random.default_rng(0)
Y = (RNG.random((32, 5)) < 0.3).astype("float32")
P = RNG.uniform(0.001, 0.999, (32, 5)).astype("float32")


def test_without_focusing_or_clipping_it_is_the_binary_cross_entropy():
    plain = AsymmetricLoss(gamma_negative=0.0, gamma_positive=0.0, clip=0.0)
    assert float(plain(Y, P)) == pytest.approx(float(keras.losses.BinaryCrossentropy()(Y, P)), rel=1e-5)
    smoothed = AsymmetricLoss(0.0, 0.0, 0.0, label_smoothing=0.1)
    assert float(smoothed(Y, P)) == pytest.approx(
        float(keras.losses.BinaryCrossentropy(label_smoothing=0.1)(Y, P)), rel=1e-5
    )


def test_easy_negatives_weigh_nothing_and_positives_keep_their_cross_entropy():
    loss = AsymmetricLoss()  # the paper's defaults: gamma- 4, gamma+ 0, clip 0.05
    one = lambda y, p: float(loss(np.array([[y]], "float32"), np.array([[p]], "float32")))  # noqa: E731
    assert one(0.0, 0.04) == 0.0  # below the clip: discarded
    assert one(0.0, 0.9) > 0.0 and one(0.0, 0.9) < -np.log(0.1) * 0.85**4 * 1.01  # a hard negative, focused
    assert one(1.0, 0.3) == pytest.approx(-np.log(0.3), rel=1e-5)  # gamma+ 0: the positive is as in BCE


def test_the_config_round_trips_through_keras_serialisation():
    loss = AsymmetricLoss(3.0, 1.0, 0.1, label_smoothing=0.05)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, AsymmetricLoss) and float(again(Y, P)) == pytest.approx(float(loss(Y, P)))


def test_single_label_data_is_refused_with_what_to_use_instead():
    with pytest.raises(UserError, match="multi-label data; for imbalanced classes use train.loss: focal"):
        make_loss(TrainConfig(loss="asymmetric"), multi_label=False)
    assert isinstance(make_loss(TrainConfig(loss="asymmetric"), multi_label=True), AsymmetricLoss)


def test_a_multi_label_model_learns_with_it(tmp_path):
    keras.utils.set_random_seed(0)
    rows = make_multi_label_set(tmp_path, 96, seed=1)
    images = np.stack([np.asarray(Image.open(tmp_path / name), "float32") for name, _ in rows])
    labels = np.array([[name in tags for name in COLORS] for _, tags in rows], "float32")
    spec = PreprocessingSpec(32, 32, 3, "pad", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train = TrainConfig(loss="asymmetric", epochs=12, batch_size=16, learning_rate=0.01, warmup_epochs=0)
    compiled = build_and_compile(train, ModelConfig(name="small_cnn", args={"width": 8}), spec, 3, 4, multi_label=True)
    history = compiled.trainee.fit(images[:64] / 255.0, labels[:64], batch_size=16, epochs=12, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    held_out = compiled.classifier.predict(images[64:] / 255.0, verbose=0)
    assert mean_ap(labels[64:], held_out) > 0.9  # chance is the labels' prevalence, about 0.4
