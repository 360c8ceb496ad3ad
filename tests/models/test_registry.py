"""The registry contract: every registered model builds behind the classifier, trains a step
on two images, saves and loads, exports a SavedModel that serves, and converts to int8
TFLite, and its tf_keras twin goes through the compression bridge; model names and arguments
are checked when the config loads."""

import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from visionpipe.components.export import tflite
from visionpipe.components.export.saved_model import export_saved_model
from visionpipe.components.train.config import TrainConfig
from visionpipe.components.train.recipe import compile_model
from visionpipe.config import load_config
from visionpipe.models.classifier import adapt_to_data, build_classifier
from visionpipe.models.config import ModelConfig
from visionpipe.models.layers import custom_layers
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.models.registry import check_args, create_model, entry, model_names
from visionpipe.pipeline.config import ConfigError
from visionpipe.serving.served_signature import load_signature
from visionpipe.serving.tflite_runner import TFLiteClassifier

SPEC = PreprocessingSpec(
    height=32, width=32, channels=3, resize_policy="stretch", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
)
CLASSES = ["a", "b", "c"]
# Small arguments keep the contract test fast; each model's defaults are what users get.
SMALL = {
    "small_cnn": {"width": 8},
    "resnet9": {"width": 8},
    "airbench": {"widths": (8, 16, 16)},
    "vit": {"dim": 32, "depth": 2, "heads": 2},
    "mobilenet_v3_small": {"alpha": 0.75},
    "mobilenet_v3_large": {"alpha": 0.75},
    "mobilenet_v2": {"alpha": 0.35},
}
HEAVY = {"efficientnet_v2_b0", "resnet50_v2", "mobilenet_v3_large", "mobilenet_v2"}  # the slow-marked run covers them


def test_every_registered_model_is_in_the_contract():
    assert set(model_names()) == set(SMALL) | HEAVY


def test_unknown_model_name_and_argument_fail_at_config_load():
    with pytest.raises(ConfigError, match="unknown model 'resnet10'.*registered models: .*resnet9"):
        load_config(None, ["model.name=resnet10"])
    with pytest.raises(ConfigError, match=r"unknown argument model.args.widht for model 'resnet9'.*width \(default"):
        load_config(None, ["model.name=resnet9", "model.args.widht=16"])
    with pytest.raises(ConfigError, match="model.args.width must be of type int"):
        load_config(None, ["model.name=resnet9", "model.args.width=wide"])
    with pytest.raises(ConfigError, match="not offered by model 'small_cnn'"):
        load_config(None, ["model.weights=imagenet"])
    assert load_config(None, ["model.name=airbench", "model.args.widths=[32, 64, 64]"]).model.args == {
        "widths": (32, 64, 64)
    }


def _params(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name


@pytest.mark.parametrize("name", [_params(n) for n in model_names()])
def test_model_contract(name, tmp_path):
    model = build_classifier(SPEC, len(CLASSES), ModelConfig(name=name, args=check_args(name, SMALL.get(name, {}))))
    compile_model(model, TrainConfig(), len(CLASSES), steps_per_epoch=1, epochs=1)
    # Keras' own applications take 30-45 s to trace a train step on 2 cores, and their graph is
    # Keras' to test: one eager step shows they train here; our own models train traced.
    model.run_eagerly = bool(entry(name).pretrained)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    y = keras.utils.to_categorical([0, 1], 3)
    before = [np.array(w) for w in model.trainable_weights]
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights, strict=True))
    probabilities = np.asarray(model(x, training=False))
    assert probabilities.shape == (2, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    model.save(tmp_path / "m.keras")
    custom_layers(keras)
    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x, training=False)), probabilities, atol=1e-5)

    export_saved_model(reloaded, SPEC, CLASSES, tmp_path / "serving" / "1")
    buffer = io.BytesIO()
    keras.utils.array_to_img(x[0]).save(buffer, format="PNG")
    out = load_signature(tmp_path / "serving" / "1")(image_bytes=np.array([buffer.getvalue()]))
    assert out["probabilities"].shape == (1, 3)
    assert out["predicted_class"].numpy()[0].decode() in CLASSES

    int8_path = tmp_path / "m.tflite"
    int8_path.write_bytes(tflite.convert_int8(reloaded, (x[i : i + 1] for i in range(2))))
    runner = TFLiteClassifier(int8_path)
    assert runner.input_dtype == np.uint8
    assert runner.predict(x).shape == (2, 3)


def test_layers_that_initialise_from_data_see_normalised_training_images():
    model = build_classifier(SPEC, 3, ModelConfig(name="airbench", args={"widths": (8, 16, 16)}))
    whiten = model.layers[-1].get_layer("whiten")
    assert not np.any(np.array(whiten.kernel))
    images = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    assert adapt_to_data(model, images) == ["whiten"]
    kernel = np.array(whiten.kernel).reshape(-1, 24)[:, :12]
    # the whitening of normalised images: (x - 0.5) / 0.25 has 16x the variance of x
    patches = ((images - 0.5) / 0.25)[:, :2, :2, :].reshape(16, -1)
    assert np.abs(kernel).max() < 20 and np.linalg.matrix_rank(kernel) == 12
    assert float(np.mean((patches @ kernel) ** 2)) == pytest.approx(1.0, rel=0.5)


@pytest.mark.slow
def test_the_compression_bridge_rebuilds_prunes_and_quantizes_every_model():
    """tfmot works on tf_keras twins (components/export/tfmot_bridge.py): each model's twin has
    the Keras 3 model's weights in the same order, has layers to prune, and accepts QAT."""
    models = {name: check_args(name, SMALL.get(name, {})) for name in model_names()}
    bridge = "visionpipe.components.export.tfmot_bridge"
    command = [sys.executable, "-m", bridge, "--check", json.dumps(models), json.dumps(list(SPEC.input_shape))]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name, args in models.items():
        network = create_model(name, SPEC.input_shape, len(CLASSES), args)
        assert report[name]["weight_shapes"] == [list(w.shape) for w in network.weights], name
        assert report[name]["pruned"], f"{name}: no layer to prune"
    assert report["resnet9"]["float_in_qat"] == []  # a plain CNN is quantized-aware trained throughout


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v2"])
def test_backbones_trained_from_scratch_keep_their_batchnorm_statistics_in_step(name):
    # keras.applications' momentum 0.999 left the moving statistics so far behind on a short
    # run that evaluation scored near chance (mobilenet_v3_small on Caltech-101: 2.8% test).
    model = build_classifier(SPEC, 3, ModelConfig(name=name, args=check_args(name, SMALL.get(name, {}))))
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 10 and all(layer.momentum == 0.99 for layer in norms)
