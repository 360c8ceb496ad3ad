"""The auto recipe (``recipe: auto``): the train stage's settings chosen from the data and a time budget.

``resolve`` runs before the train (and tune) stage's fingerprint (``StageSpec.resolve_params``),
so the fingerprint, the cache and the saved ``params.json`` hold the values training uses. It
reads what ingest and validate measured (``DataFacts``), asks whether ImageNet weights can be
had for a pretrained backbone, and ``choose`` turns both into config values by the rules below.
Every key the user set (``Config.explicit``: the YAML and ``--set``) keeps its value. The epoch
count chosen here is the most the data can use; ``budget.py`` lowers it at train time to what
``train.time_budget_minutes`` affords, by timing real training steps. That count depends on
the machine's speed at the time, so it is the one choice the fingerprint does not hold (the
budget is in it); ``params.json`` records it with the rest.

The rules (the README's "The auto recipe" has them as a table):

- **Kind of images.** Photos: the train images' mean short side is at least ``PHOTO_SIDE``.
  Smaller images (digits, icons, CIFAR) train at their own size (32x32 when sizes vary).
- **Channels.** One when nearly every train image is gray (``GRAY_SHARE``) and no pretrained
  backbone is used, else three.
- **Pretrained backbone** for photos, fewer than ``PRETRAINED_MAX_IMAGES`` train images, when
  MobileNetV2's ImageNet weights are in Keras' cache or can be downloaded: ``TRANSFER``'s
  recipe, 160x160 (128x128 when the budget is tight). Otherwise one line says why not, and:
- **From scratch, photos**: ResNet-9 on the first rung of ``SCRATCH_LADDER`` (image size and
  width) that affords the epochs the data can use (``_rung``), with random-resized crops,
  mirror images and colour jitter, AdamW, weight decay, label smoothing.
- **From scratch, small images**: small_cnn (gray) or ResNet-9 width 16 (colour), shifts and,
  for colour, mirror images (digits must not be mirrored).
- **Batch** 16 / 32 / 64 by train images; the learning rate follows the batch (square root).
- **Epochs**: ``max_epochs``, more for fewer images; the budget decides how many run.
- **Classes** more unequal than ``IMBALANCE`` (largest / smallest): losses weighted by class.
- No EMA of the weights (it did not beat plain training on a few hundred photos and costs a
  second val pass); early stopping patience a third of the epochs (``budget.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from visionpipe.components.common.search_space import apply_values
from visionpipe.components.train.spec import Params
from visionpipe.pipeline.artifacts import Artifact, Examples, Statistics
from visionpipe.pipeline.config import ConfigError, is_explicit
from visionpipe.pipeline.errors import UserError

PHOTO_SIDE = 48  # px: mean short side from which images count as photos
GRAY_SHARE = 0.99  # share of one-channel originals from which the data counts as gray
IMBALANCE = 1.5  # largest / smallest train class beyond which losses are weighted by class
PRETRAINED_MAX_IMAGES = 20_000  # beyond, training from scratch within a budget is competitive
BASE_LEARNING_RATE = 0.002  # AdamW's peak at batch 32; other batches scale it by the square root
# From scratch on photos, best first: (image size, ResNet-9 width, training cost in ms per
# image measured unloaded on the 2-core CPU this project is measured on).
SCRATCH_LADDER = ((96, 24, 26.0), (80, 24, 18.0), (64, 24, 11.6), (64, 16, 7.0))
# Transfer learning: (image size, ms per image of a fine-tuning step, as above).
TRANSFER_LADDER = ((160, 25.0), (128, 16.0), (96, 9.0))
# A rung is taken when the epochs the data can use (at most LADDER_EPOCHS) fit the budget
# SPEED_MARGIN times over at its cost. Epochs mattered more than size: on 5 Caltech-101
# classes (200 train photos, 10 minutes on the shared machine, which ran up to 1.6x slower
# than unloaded) 64x64 for 111 epochs scored 84% test, 96x96 for 40 epochs 78%.
LADDER_EPOCHS = 120
SPEED_MARGIN = 2.0
TRANSFER: dict[str, Any] = {  # config keys and values of several types
    "model.name": "mobilenet_v2",
    "model.args": {"alpha": 1.0, "dropout": 0.2},
    "model.weights": "imagenet",
    "train.finetune.head_epochs": 3,
    "train.finetune.learning_rate_scale": 0.1,
    "train.weight_decay": 0.01,
}

Probe = Callable[[str, dict, int], tuple[str, str]]  # models.applications.imagenet_availability


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What ingest and validate measured that the rules use."""

    train_images: int
    val_images: int
    class_counts: tuple[int, ...]  # train images per class
    height: float  # mean over the train split, as stored (upright)
    width: float
    same_size: bool  # every train image has one height and width
    gray_share: float  # train images whose original has one channel

    @classmethod
    def of(cls, examples: Examples, statistics: Statistics) -> DataFacts:
        train = statistics.split_summary("train")
        height, width = train.get("height") or {}, train.get("width") or {}
        count = train.get("count", 0)
        return cls(
            train_images=statistics.counts.get("train", 0),
            val_images=statistics.counts.get("val", 0),
            class_counts=tuple(statistics.class_counts.get(c, 0) for c in examples.classes),
            height=float(height.get("mean", 0.0)),
            width=float(width.get("mean", 0.0)),
            same_size=height.get("min") == height.get("max") and width.get("min") == width.get("max"),
            gray_share=(train.get("channels") or {}).get("1", 0) / max(count, 1),
        )

    @property
    def photos(self) -> bool:
        return min(self.height, self.width) >= PHOTO_SIDE

    @property
    def gray(self) -> bool:
        return self.gray_share >= GRAY_SHARE

    def describe(self) -> str:
        kind = "photos" if self.photos else "small images"
        colour = "gray" if self.gray else "colour"
        return (
            f"{self.train_images:,} train / {self.val_images:,} val images, {len(self.class_counts)} classes, "
            f"{colour} {kind} of about {self.width:.0f}x{self.height:.0f}"
        )


@dataclasses.dataclass
class Choice:
    values: dict[str, Any]  # dotted config key -> value
    lines: list[str]  # why, for the log


def resolve(params: Params, inputs: dict[str, Artifact | None]) -> tuple[Params, list[str]]:
    """The train stage's params with auto's choices for every key the user did not set."""
    from visionpipe.models.applications import imagenet_availability

    if params.recipe != "auto":
        return params, []
    examples, statistics = inputs["examples"], inputs["statistics"]
    # Required inputs of train and tune (their specs): the runner always passes both.
    if not isinstance(examples, Examples) or not isinstance(statistics, Statistics):
        raise TypeError(f"recipe auto needs Examples and Statistics; got {examples!r}, {statistics!r}")
    facts = DataFacts.of(examples, statistics)
    if not facts.train_images:
        return params, []  # nothing to choose from: the gate or the executor says what is wrong
    choice = choose(facts, params, imagenet_availability)
    mine = {k: v for k, v in choice.values.items() if not is_explicit(params.explicit, k)}
    if mine.get("model.name", params.model.name) != choice.values["model.name"]:
        mine.pop("model.args", None)  # auto's arguments are for its own model, not the one you set
    try:
        resolved = apply_values(params, mine)
    except ConfigError as err:
        raise UserError(f"recipe auto with your settings: {err}") from None
    kept = [k for k in choice.values if k not in mine]
    return resolved, [*choice.lines, summary_line(resolved, kept)]


def resolve_tune(params: Any, inputs: dict[str, Artifact | None]) -> tuple[Any, list[str]]:
    """The tune stage's base params, as ``resolve`` completes them for train."""
    base, lines = resolve(params.base, inputs)
    return dataclasses.replace(params, base=base), lines


def choose(facts: DataFacts, params: Params, probe: Probe) -> Choice:
    """Config values for the data, the budget and the user's own settings (``params.explicit``)."""
    fixed = params.explicit
    budget_ms = params.train.time_budget_minutes * 60_000
    lines = [f"auto recipe for {facts.describe()}"]
    transfer, why = _transfer(facts, params, probe)
    if why:
        lines.append(f"auto: {why}")
    if transfer:
        values = _transfer_values(facts, budget_ms, fixed, params)
    elif facts.photos:
        values = _scratch_photo_values(facts, budget_ms, fixed, params)
    else:
        values = _small_image_values(facts)
    batch = params.train.batch_size if is_explicit(fixed, "train.batch_size") else batch_size(facts.train_images)
    values.update(
        {
            "train.batch_size": batch,
            "train.optimizer": "adamw",
            "train.learning_rate": round(BASE_LEARNING_RATE * math.sqrt(batch / 32), 6),
            "train.schedule": "cosine",
            "train.warmup_epochs": 3.0 if facts.train_images / batch < 50 else 1.0,
            "train.ema_epochs": 0.0,
            "train.label_smoothing": 0.1,
            "train.class_balance": "weights" if imbalance(facts) > IMBALANCE else "none",
            "train.epochs": max_epochs(facts, transfer),
        }
    )
    return Choice(values, lines)


def _transfer(facts: DataFacts, params: Params, probe: Probe) -> tuple[bool, str]:
    """(whether to fine-tune a pretrained backbone, a line saying why not when it matters)."""
    fixed, model = params.explicit, params.model
    if is_explicit(fixed, "model.weights"):
        return model.weights != "none", ""
    if not facts.photos or facts.train_images >= PRETRAINED_MAX_IMAGES:
        return False, ""
    if is_explicit(fixed, "model.name") and model.name != TRANSFER["model.name"]:
        return False, ""
    if is_explicit(fixed, "preprocessing.channels") and params.preprocessing.channels != 3:
        return False, ""
    size = _transfer_size(facts, params.train.time_budget_minutes * 60_000, fixed, params)
    args = model.args if is_explicit(fixed, "model.args") else TRANSFER["model.args"]
    status, detail = probe(TRANSFER["model.name"], dict(args), size)
    if status == "unavailable":
        return False, f"no pretrained backbone: {detail}; training from scratch"
    how = "in Keras' cache" if status == "cached" else "to be downloaded"
    return True, f"pretrained {TRANSFER['model.name']} (ImageNet weights {how}: {detail})"


def _image_size(fixed, params: Params, size: int) -> int:
    """``size``, or the side the user set (the longer one, for the cost estimate)."""
    return max(params.preprocessing.image_size) if is_explicit(fixed, "preprocessing.image_size") else size


def _rung(facts: DataFacts, costs: list[float], budget_ms: float, transfer: bool) -> int:
    """The first rung (by its cost per image) that affords the epochs the data can use."""
    head = TRANSFER["train.finetune.head_epochs"] if transfer else 0
    epochs = min(max_epochs(facts, transfer) + head, LADDER_EPOCHS)
    for i, cost in enumerate(costs):
        if facts.train_images * epochs * cost * SPEED_MARGIN <= budget_ms:
            return i
    return len(costs) - 1


def _transfer_size(facts: DataFacts, budget_ms: float, fixed, params: Params) -> int:
    rung = _rung(facts, [cost for _, cost in TRANSFER_LADDER], budget_ms, transfer=True)
    return _image_size(fixed, params, TRANSFER_LADDER[rung][0])


def _transfer_values(facts: DataFacts, budget_ms: float, fixed, params: Params) -> dict[str, Any]:
    size = _transfer_size(facts, budget_ms, fixed, params)
    return {
        **TRANSFER,
        "preprocessing.image_size": (size, size),
        "preprocessing.channels": 3,
        "preprocessing.resize_policy": "crop",
        # Few images: fine-tune only the top of the backbone (about its last 30 convolutions).
        "train.finetune.unfreeze": 60 if facts.train_images < 2000 else -1,
        "train.augment.policy": ({"op": "random_resized_crop", "magnitude": 0.5}, "flip_horizontal"),
    }


def _scratch_photo_values(facts: DataFacts, budget_ms: float, fixed, params: Params) -> dict[str, Any]:
    size, width, _ = SCRATCH_LADDER[_rung(facts, [cost for *_, cost in SCRATCH_LADDER], budget_ms, transfer=False)]
    policy: tuple[Any, ...] = ("random_resized_crop", "flip_horizontal")
    if not facts.gray:
        policy += ({"op": "color_jitter", "probability": 0.5},)
    return {
        "preprocessing.image_size": (size, size),
        "preprocessing.channels": 1 if facts.gray else 3,
        "preprocessing.resize_policy": "crop",
        "model.name": "resnet9",
        "model.args": {"width": width, "dropout": 0.25},
        "model.weights": "none",
        "train.weight_decay": 0.05,
        "train.augment.policy": policy,
    }


def _small_image_values(facts: DataFacts) -> dict[str, Any]:
    size = (round(facts.height), round(facts.width)) if facts.same_size else (32, 32)
    policy: tuple[Any, ...] = ({"op": "translate", "magnitude": 0.1},)
    if not facts.gray:
        policy = ("flip_horizontal", *policy)
    model = ("small_cnn", {"width": 32, "dropout": 0.25}) if facts.gray else ("resnet9", {"width": 16, "dropout": 0.25})
    return {
        "preprocessing.image_size": size,
        "preprocessing.channels": 1 if facts.gray else 3,
        "preprocessing.resize_policy": "stretch",
        "model.name": model[0],
        "model.args": model[1],
        "model.weights": "none",
        "train.weight_decay": 5e-4,
        "train.augment.policy": policy,
    }


def batch_size(train_images: int) -> int:
    """16 for a few hundred images (enough steps per epoch), 64 for thousands, else 32."""
    return 16 if train_images < 300 else 32 if train_images < 3000 else 64


def imbalance(facts: DataFacts) -> float:
    counts = [c for c in facts.class_counts if c]
    return max(counts) / min(counts) if counts else 1.0


def max_epochs(facts: DataFacts, transfer: bool) -> int:
    """The most epochs the data can use: more for fewer images, as 1 / sqrt(images) (about 200
    for 200 photos, 50 for 3,700, 13 for 50,000); a pretrained backbone needs a tenth."""
    scale, low, high = (300, 6, 30) if transfer else (3000, 12, 200)
    return min(max(round(scale / math.sqrt(facts.train_images)), low), high)


def summary_line(params: Params, kept: list[str]) -> str:
    """What auto chose, on one line; the keys it left as the user set them."""
    p, m, t = params.preprocessing, params.model, params.train
    args = " ".join(f"{k} {v}" for k, v in m.args.items())
    policy = " + ".join(step.op for step in t.augment.policy) or "none"
    weights = f", {m.weights} weights, head first for {t.finetune.head_epochs} epochs" if m.weights != "none" else ""
    return (
        f"auto chose: {p.image_size[0]}x{p.image_size[1]} ({p.resize_policy}, {p.channels} channel"
        f"{'s' if p.channels != 1 else ''}), {m.name} {args}{weights}; batch {t.batch_size}, {t.optimizer} at "
        f"{t.learning_rate:g} ({t.schedule}), weight decay {t.weight_decay:g}, label smoothing "
        f"{t.label_smoothing:g}, class balance {t.class_balance}; augmentation {policy}; up to {t.epochs} epochs"
        + (f"; kept as you set them: {', '.join(kept)}" if kept else "")
    )
