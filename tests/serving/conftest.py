"""Fixtures for the serving tests: tiny exported models (two distinguishable versions), test
images, and a development server on free ports of 127.0.0.1 that each test stops."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionpipe.components.push.versions import publish, staging_dir
from visionpipe.serving.model_store import ModelSpec
from visionpipe.serving.server import DevServer, ServerOptions

CLASSES = ["red", "green", "blue"]
MODEL = "tiny"


def export_tiny(path: Path, seed: int) -> None:
    """An 8x8 RGB classifier with seed-dependent weights, exported as the pipeline exports."""
    import keras

    from visionpipe.components.export.saved_model import export_saved_model
    from visionpipe.models.preprocessing import PreprocessingSpec

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten()]
        + [keras.layers.Dense(len(CLASSES), activation="softmax")]
    )
    spec = PreprocessingSpec(8, 8, 3, "stretch", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    export_saved_model(model, spec, CLASSES, path)


def push_version(exported: Path, base: Path, version: int) -> None:
    """With push's own steps: staged in a hidden folder, then renamed into place in one step."""
    staged = staging_dir(base, version)
    shutil.copytree(exported, staged)
    publish(staged, base, version)


def image_bytes(seed: int, size=(12, 10), fmt="PNG", color=None) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if color is not None:
        pixels[:] = color
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[int, Path]:
    """Two exported versions with different weights: {1: path, 2: path}."""
    root = tmp_path_factory.mktemp("exported")
    paths = {}
    for version in (1, 2):
        export_tiny(root / str(version), seed=version)
        paths[version] = root / str(version)
    return paths


@pytest.fixture
def base_path(tmp_path, exported) -> Path:
    """A TF Serving base path holding version 1."""
    base = tmp_path / "serving" / MODEL
    base.mkdir(parents=True)
    push_version(exported[1], base, 1)
    return base


def in_process(path: Path, images: list[bytes]) -> np.ndarray:
    """Probabilities from the SavedModel's signature called in this process."""
    import tensorflow as tf

    from visionpipe.serving.served_signature import load_signature

    return load_signature(path)(image_bytes=tf.constant(images))["probabilities"].numpy()


@pytest.fixture
def serve():
    """serve(specs, **ServerOptions fields) -> a started DevServer on free ports; stopped after the test."""
    started = []

    def start(specs: list[ModelSpec], config_file=None, **options) -> DevServer:
        options = {"rest_api_port": 0, "grpc_port": 0, "file_system_poll_wait_seconds": 0, **options}
        server = DevServer(specs, ServerOptions(**options), config_file).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
