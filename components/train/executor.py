"""train executor: builds the model from the registry and fits it with Keras callbacks.

The model is ``Input -> Normalization(train mean/std) -> registry model``, so normalisation
travels with it into every export. With ``train.augment.placement: model`` the augmentation
layers sit in front of it in a training-only wrapper that shares its weights; only the
classifier is saved. BackupAndRestore keeps per-epoch state in the stage's scratch directory
(keyed by fingerprint): a killed run resumes from its last finished epoch.
"""

from __future__ import annotations

import json
import math

import keras
import tensorflow as tf

from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.train.augment import build_policy
from visionpipe.components.train.input_pipeline import (
    balancing_weights,
    choose_cache,
    class_frequencies,
    shuffle_buffer,
    training_dataset,
)
from visionpipe.components.train.progress import TrainingProgress
from visionpipe.components.train.spec import Inputs, Outputs, Params
from visionpipe.components.train.strategy import choose_strategy
from visionpipe.models.preprocessing import PreprocessingSpec, normalization_layer
from visionpipe.models.registry import create_model
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext


def preprocessing_spec(params: Params, statistics) -> PreprocessingSpec:
    p = params.preprocessing
    mean = statistics.properties.get("pixel_mean") or [0.5] * p.channels
    std = statistics.properties.get("pixel_std") or [0.25] * p.channels
    return PreprocessingSpec(
        height=p.image_size[0],
        width=p.image_size[1],
        channels=p.channels,
        resize_policy=p.resize_policy,
        mean=tuple(mean),
        std=tuple(std),
        crop_fraction=p.crop_fraction,
    )


def build_classifier(name: str, spec: PreprocessingSpec, num_classes: int, model_config) -> keras.Model:
    inputs = keras.Input(spec.input_shape, name="image")
    backbone = create_model(name, spec.input_shape, num_classes, model_config)
    return keras.Model(inputs, backbone(normalization_layer(spec)(inputs)), name=f"{name}_classifier")


def _balance(params: Params, statistics, classes: list[str]) -> tuple[list[float] | None, list[float] | None]:
    """(class weights, class frequencies to resample from) as ``train.class_balance`` asks."""
    if params.train.class_balance == "none":
        return None, None
    counts = statistics.properties.get("class_counts") or {}
    if not any(counts.get(c) for c in classes):
        raise UserError(
            "train.class_balance needs per-class counts of the train split; rerun validate "
            "(`visionpipe run --stage validate --force`)"
        )
    if params.train.class_balance == "weights":
        return balancing_weights(counts, classes), None
    return None, class_frequencies(counts, classes)


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.train
    keras.utils.set_random_seed(params.seed)
    if params.input.deterministic:
        tf.config.experimental.enable_op_determinism()
    spec = preprocessing_spec(params, inputs.statistics)
    classes = inputs.examples.classes
    counts = inputs.statistics.properties["counts"]
    examples = inputs.examples.path
    cache = choose_cache(
        params.input,
        counts["train"] + counts["val"],
        spec,
        params.input.cache_dir or ctx.run_root / "cache",
        inputs.examples.fingerprint or inputs.examples.uri,
    )
    policy = build_policy(cfg.augment, params.seed)
    class_weights, resample_from = _balance(params, inputs.statistics, classes)

    strategy = choose_strategy(cfg)
    ctx.log(
        f"{counts['train']} train / {counts['val']} val images, {len(classes)} classes, "
        f"model {params.model.name}, strategy {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replicas), cache {cache.kind}: {cache.reason}, "
        f"shuffle buffer {shuffle_buffer(params.input, cache, counts['train']):,} images"
    )
    if policy is not None:
        ctx.log(
            f"augmentation: {', '.join(step.op for step in cfg.augment.policy)} (placement {cfg.augment.placement})"
        )
    train_ds = training_dataset(
        examples,
        spec,
        len(classes),
        cfg.batch_size,
        params.input,
        params.seed,
        cache,
        policy,
        class_weights,
        resample_from,
        num_images=counts["train"],
    )
    val_ds = None
    if counts["val"]:
        val_ds = image_dataset(
            examples, "val", spec, len(classes), cfg.batch_size, cache=cache.for_split("val"), num_images=counts["val"]
        )
    else:
        ctx.log(f"no val split: all {cfg.epochs} epochs run without early stopping, and the last epoch's model is kept")
    steps = cfg.steps_per_epoch or math.ceil(counts["train"] / cfg.batch_size)
    if cfg.steps_per_epoch and resample_from is None:  # fixed-length epochs draw from an endless stream
        train_ds = train_ds.repeat()

    with strategy.scope():
        model = build_classifier(params.model.name, spec, len(classes), params.model)
        augment_in_model = policy.in_model if policy is not None else None
        trainee = model
        if augment_in_model is not None:
            image = keras.Input(spec.input_shape, name="image")
            trainee = keras.Model(image, model(augment_in_model(image)), name="trainee")
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(cfg.epochs * steps - steps, 1), warmup_target=cfg.learning_rate, warmup_steps=steps
        )
        trainee.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            # Top-3 only where it says something: with 3 classes or fewer it is always 1.
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")]
            + ([keras.metrics.TopKCategoricalAccuracy(k=3, name="top_k_accuracy")] if len(classes) > 3 else []),
        )
    out = outputs.model.path
    callbacks = [
        keras.callbacks.BackupAndRestore(str(ctx.scratch_dir / "backup")),
        keras.callbacks.TensorBoard(str(out / "logs")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=False),
        TrainingProgress(ctx, cfg.epochs, steps),
    ]
    if val_ds is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    # shuffle=False only tells Keras not to warn: its own shuffling never applies to a
    # tf.data input, which shuffles itself (input.shuffle_buffer).
    history = trainee.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.epochs,
        shuffle=False,
        steps_per_epoch=steps if (cfg.steps_per_epoch or resample_from) else None,
        callbacks=callbacks,
        verbose=cfg.verbose,
    )
    model.save(out / "model.keras")
    spec.save(out / "preprocessing.json")
    (out / "classes.json").write_text(json.dumps(classes))
    (out / "history.json").write_text(json.dumps(history.history, indent=2))
    monitored = "val_loss" if val_ds is not None else "loss"
    losses = history.history[monitored]
    # With a val split, EarlyStopping restored the best epoch; without one, the last is kept.
    best = min(range(len(losses)), key=losses.__getitem__) if val_ds is not None else len(losses) - 1
    prefix = "val_" if val_ds is not None else ""
    summary = {
        "epochs_run": len(losses),
        "best_epoch": best + 1,
        f"{prefix}accuracy": float(history.history[f"{prefix}accuracy"][best]),
        f"{prefix}loss": float(losses[best]),
        "params": model.count_params(),
    }
    summary["notes"] = [
        f"{len(losses)} epoch{'s' if len(losses) != 1 else ''}; kept the model of epoch {best + 1}"
        + (" (lowest val loss)" if val_ds is not None else " (the last: there is no val split)")
        + f", {prefix}accuracy {summary[f'{prefix}accuracy']:.4f}"
    ]
    outputs.model.properties.update(
        summary, model_name=params.model.name, classes=classes, input_shape=list(spec.input_shape), cache=cache.kind
    )
    return summary
