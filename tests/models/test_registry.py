"""Every registered model builds, trains a step, saves/loads, exports and converts to TFLite."""

import keras
import numpy as np
import pytest

from visionpipe.components.export import tflite
from visionpipe.components.export.saved_model import export_saved_model, load_signature
from visionpipe.components.train.executor import build_classifier
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.models.registry import create_model, model_names
from visionpipe.pipeline.config import ModelConfig
from visionpipe.pipeline.errors import UserError
from visionpipe.serving.tflite_runner import TFLiteClassifier

SPEC = PreprocessingSpec(
    height=32, width=32, channels=3, resize_policy="stretch", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
)
CLASSES = ["a", "b", "c"]


def test_unknown_model_lists_the_registered_names():
    with pytest.raises(UserError, match="registered models: .*small_cnn"):
        create_model("nope", (32, 32, 3), 3)


def test_registry_has_a_small_and_a_larger_model():
    assert {"small_cnn", "resnet9", "mobilenet_v2"} <= set(model_names())


@pytest.mark.parametrize("name", model_names())
def test_model_round_trip(name, tmp_path):
    model = build_classifier(name, SPEC, len(CLASSES), ModelConfig(name=name, width=8))
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 0], 3)
    model.fit(x, y, epochs=1, verbose=0)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), probabilities, atol=1e-5)

    export_saved_model(reloaded, SPEC, CLASSES, tmp_path / "serving" / "1")
    import io

    buffer = io.BytesIO()
    keras.utils.array_to_img(x[0]).save(buffer, format="PNG")
    out = load_signature(tmp_path / "serving" / "1")(image_bytes=np.array([buffer.getvalue()]))
    assert out["probabilities"].shape == (1, 3)
    assert out["predicted_class"].numpy()[0].decode() in CLASSES

    int8_path = tmp_path / "m.tflite"
    int8_path.write_bytes(tflite.convert_int8(reloaded, (x[i : i + 1] for i in range(4))))
    runner = TFLiteClassifier(int8_path)
    assert runner.input_dtype == np.uint8
    assert runner.predict(x).shape == (4, 3)
