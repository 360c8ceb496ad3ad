"""The Keras model export makes every file from: calibrated, and flip-averaged when asked."""

import keras
import numpy as np

from visionpipe.components.export.executor import served_model
from visionpipe.models.classifier import build_classifier
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.pipeline.config import ModelConfig


def test_tta_flip_averages_the_calibrated_probabilities_not_the_raw_ones():
    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec(16, 16, 3, "pad", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    trained = build_classifier(spec, 3, ModelConfig(name="small_cnn", args={"width": 4}))
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    temperature = 0.25  # a sharpening temperature, so calibrated and raw differ clearly
    calibrated = served_model(trained, temperature, tta_flip=False)
    expected = 0.5 * (calibrated.predict(images, verbose=0) + calibrated.predict(images[:, :, ::-1], verbose=0))
    flipped = served_model(trained, temperature, tta_flip=True).predict(images, verbose=0)
    np.testing.assert_allclose(flipped, expected, atol=1e-5)
    raw = 0.5 * (trained.predict(images, verbose=0) + trained.predict(images[:, :, ::-1], verbose=0))
    assert np.abs(flipped - raw).max() > 1e-3  # the test can tell the two apart
