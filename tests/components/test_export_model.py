"""The Keras models export makes its files from: calibrated (the distilled student at its own
temperature), and flip-averaged when asked."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.export.config import DistillConfig
from visionpipe.components.export.distill import calibrated, distillation_loss
from visionpipe.components.export.executor import served_model
from visionpipe.data import record_format
from visionpipe.models.classifier import build_classifier
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec


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


def _val_split(folder, labels):
    """A val split of 8x8 PNGs whose brightness gives the class (Example records as ingest writes)."""
    (folder / "val").mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "val" / "data-00000-of-00001.tfrecord")) as writer:
        for i, label in enumerate(labels):
            encoded = tf.io.encode_png(np.full((8, 8, 3), 40 + 80 * label + i % 5, np.uint8)).numpy()
            record = record_format.Record(encoded, label, str(label), f"{i}.png", "", "PNG", "RGB", 8, 8, 3, False)
            writer.write(record_format.serialize(record))
    return folder


def test_the_distilled_student_gets_its_own_temperature_fitted_on_val(tmp_path):
    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec(8, 8, 3, "stretch", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    student = build_classifier(spec, 3, ModelConfig(name="small_cnn", args={"width": 4}))
    examples = _val_split(tmp_path / "examples", [0, 1, 2] * 8)
    model, temperature, note = calibrated(student, examples, spec, 3, val_images=24)
    assert temperature != 1.0 and f"its own temperature {temperature:.3f}, fitted on val" in note
    images = next(iter(image_dataset(examples, "val", spec, 3, batch_size=24)))[0].numpy()
    raw = student.predict(images, verbose=0)
    expected = keras.ops.softmax(np.log(raw) / temperature).numpy()
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)
    unchanged, one, said = calibrated(student, examples, spec, 3, val_images=0)
    assert unchanged is student and one == 1.0 and "no val split" in said


def test_the_distillation_loss_is_the_kl_divergence_of_the_softened_probabilities():
    # Keras' LogitsDistillation with its default loss gave exactly 0 on these log-probabilities:
    # the student learnt from the labels alone.
    teacher = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32))
    student = np.log(np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], np.float32))
    temperature = 3.0
    loss = float(distillation_loss(DistillConfig(temperature=temperature)).compute_loss(teacher, student))

    def softened(log_p):
        p = np.exp(log_p / temperature)
        return p / p.sum(axis=1, keepdims=True)

    t, s = softened(teacher), softened(student)
    expected = np.mean(np.sum(t * np.log(t / s), axis=1)) * temperature**2
    assert loss == pytest.approx(expected, rel=1e-4) and expected > 0.1
    assert float(distillation_loss(DistillConfig()).compute_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
