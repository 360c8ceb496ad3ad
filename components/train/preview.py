"""``visionpipe augment-preview``: a PNG grid of what the configured augmentation policy does.

Each row is one training image: the original, then independently augmented versions, drawn
by the same policy code the train stage runs (whatever its placement). Under an image whose
label was mixed (MixUp, CutMix), the two largest label weights are printed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visionpipe.pipeline.errors import UserError

if TYPE_CHECKING:  # the application composes the tree; a stage reads its own sections of it
    from visionpipe.config import Config


def latest_examples(root: Path):
    return _latest(root, "ingest", "examples")


def _latest(root: Path, stage: str, output: str):
    from visionpipe.pipeline.metadata import MetadataStore

    db = root / "metadata.sqlite"
    latest = MetadataStore(db).latest_outputs(stage) if db.is_file() else None
    if latest is None:
        done = "ingested" if stage == "ingest" else "validated"
        raise UserError(f"no {done} data under {root}; run `visionpipe run --config <config> --stage {stage}` first")
    return latest[1][output]


def _auto_choice(config: Config) -> Config:
    """recipe auto: the preprocessing and policy auto chooses for the latest validated data."""
    from visionpipe.components.train import auto
    from visionpipe.components.train.spec import params_of

    root = Path(config.run.root)
    inputs = {"examples": latest_examples(root), "statistics": _latest(root, "validate", "statistics")}
    params, _ = auto.resolve(params_of(config), inputs)
    return dataclasses.replace(config, preprocessing=params.preprocessing, train=params.train)


def write_preview(config: Config, out: Path, num_images: int = 8, variants: int = 5) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from visionpipe.components.common.dataset import float_batch, pixels
    from visionpipe.components.train.augment import build_policy
    from visionpipe.models.preprocessing import PreprocessingSpec

    if config.recipe == "auto":
        config = _auto_choice(config)
    if not config.train.augment.policy:
        raise UserError("train.augment.policy is empty: there is nothing to preview")
    examples = latest_examples(Path(config.run.root))
    classes = examples.classes
    p = config.preprocessing
    spec = PreprocessingSpec(
        p.image_size[0],
        p.image_size[1],
        p.channels,
        p.resize_policy,
        (0.0,) * p.channels,
        (1.0,) * p.channels,
        p.crop_fraction,
    )
    pixel_batch, label_ids = next(iter(pixels(examples.path, "train", spec).batch(num_images)))
    images, labels = float_batch(pixel_batch, label_ids, len(classes))
    # The preview shows every op, including those the model would run on the accelerator.
    policy = build_policy(dataclasses.replace(config.train.augment, placement="data"), config.seed)
    if policy is None:  # None only for an empty policy, refused above
        raise RuntimeError("build_policy gave no policy for a non-empty train.augment.policy")
    # Variant k shows pass k over the data (what flip_alternating flips depends on it).
    columns = [(images, labels)] + [
        policy.on_batch(images, labels, tf.fill(tf.shape(label_ids), tf.constant(k, tf.int64))) for k in range(variants)
    ]

    rows = int(images.shape[0])
    figure, axes = plt.subplots(rows, variants + 1, figsize=(1.6 * (variants + 1), 1.8 * rows), squeeze=False)
    for column, (batch, batch_labels) in enumerate(columns):
        for row in range(rows):
            ax = axes[row][column]
            ax.imshow(np.squeeze(batch[row].numpy()), cmap="gray" if p.channels == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(_label_text(batch_labels[row].numpy(), classes), fontsize=7)
            if row == 0:
                ax.set_title("original" if column == 0 else f"augmented {column}", fontsize=8)
    ops = ", ".join(step.op for step in config.train.augment.policy)
    figure.suptitle(f"train.augment.policy: {ops}", fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def _label_text(weights: np.ndarray, classes: list[str]) -> str:
    top = np.argsort(weights)[::-1][:2]
    if weights[top[1]] < 1e-3:
        return classes[top[0]]
    return " / ".join(f"{classes[i]} {weights[i]:.2f}" for i in top)
