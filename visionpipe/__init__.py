"""visionpipe: images in; a validated dataset, a trained model, a gated evaluation and deployable
artifacts out.

The public API, used by the README and the quickstart notebook::

    import visionpipe
    config = visionpipe.load_config("configs/demo.yaml", ["train.epochs=2"])
    result = visionpipe.run_pipeline(config)
    config = visionpipe.load_config(data="my_photos/")  # recipe auto on a folder, as `run --data`
    visionpipe.predict("visionpipe_runs/demo/serving/visionpipe", ["cat.jpg"])
    visionpipe.augment_preview(config, "preview.png")  # what the augmentation policy does

This package is also the application layer (ARCHITECTURE.md): the CLI, the graph of stages,
config loading and the run report. The project's top-level folders appear in it as symlinks,
``visionpipe.pipeline``, ``visionpipe.data``, ``visionpipe.models``, ``visionpipe.serving`` and
``visionpipe.components``, so static tools resolve every import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from visionpipe.config import Config, load_config
from visionpipe.pipeline.config import ConfigError
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.runner import RunResult
from visionpipe.run import run_pipeline

if TYPE_CHECKING:
    from visionpipe.serving.predict import Prediction

__all__ = [
    "Config",
    "ConfigError",
    "Prediction",
    "RunResult",
    "UserError",
    "augment_preview",
    "load_config",
    "predict",
    "run_pipeline",
]


def predict(model: str | Path, images: Sequence[str | Path], top_k: int = 3) -> list[Prediction]:
    """Top-k classes of image files from an exported model: a ``.tflite`` file, a SavedModel
    directory, a TF Serving model base path or an export artifact directory.

    Returns one ``Prediction`` (``path``, ``top``: [(class, probability), ...]) per image.
    """
    from visionpipe.serving.predict import predict as predict_files

    return predict_files(Path(model), [Path(p) for p in images], top_k)


def augment_preview(config: Config, out: str | Path, num_images: int = 8, variants: int = 5) -> Path:
    """Writes a PNG grid of ingested training images next to ``variants`` augmented versions of
    each under ``config.train.augment.policy``; returns its path. Needs an ingested dataset."""
    from visionpipe.components.train.preview import write_preview

    return write_preview(config, Path(out), num_images, variants)


def __getattr__(name: str):
    if name == "Prediction":  # without importing TensorFlow-side modules at `import visionpipe`
        from visionpipe.serving.predict import Prediction

        return Prediction
    raise AttributeError(f"module 'visionpipe' has no attribute {name!r}")
