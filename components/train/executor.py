"""train executor: the datasets (``data.py``), the compiled model (``recipe.py``) and the
callbacks (``callbacks.py``), then ``fit``: once, or in two phases for transfer learning
(``finetune.py``).

The model is ``Input -> [Normalization(train mean/std)] -> registry model``, so normalisation
travels with it into every export. With ``train.augment.placement: model`` the augmentation
layers sit in front of it in a training-only wrapper that shares its weights; only the
classifier is saved, in float32 whatever ``train.mixed_precision`` trained it in.
BackupAndRestore keeps per-epoch state in the stage's scratch directory (keyed by
fingerprint): a killed run resumes from its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from visionpipe.components.common.process_state import restored_afterwards
from visionpipe.components.common.search_space import apply_values
from visionpipe.components.common.tracking import EpochMetrics, log_folder, tracked_run
from visionpipe.components.train import budget, finetune
from visionpipe.components.train.best_epoch import BestEpoch, keep_rule
from visionpipe.components.train.callbacks import training_callbacks
from visionpipe.components.train.data import TrainingData, training_data
from visionpipe.components.train.precision import training_policy
from visionpipe.components.train.recipe import Compiled, build_for, compile_model
from visionpipe.components.train.spec import Inputs, Outputs, Params
from visionpipe.components.train.strategy import choose_strategy, describe, shard_for_workers, worker_id
from visionpipe.models.classifier import adapt_to_data, build_classifier
from visionpipe.pipeline.artifacts import Model
from visionpipe.pipeline.config import to_dict
from visionpipe.pipeline.errors import NotRegistered, UserError
from visionpipe.pipeline.stage import StageContext

ADAPT_IMAGES = 5000  # training images shown to layers that initialise from data


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    # Seeds, the dtype policy and op determinism are set for this stage only.
    with restored_afterwards():
        return _train(inputs, outputs, params, ctx)


def _train(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    params, tuned = _with_tuned_values(inputs, params, ctx)
    _seed_and_precision(params)
    strategy = choose_strategy(params.train)  # first: multi-worker collectives must be set up before any op runs
    data = training_data(inputs, params, ctx, worker_id(strategy))
    distribution = describe(strategy)
    _check_batch_splits(params.train.batch_size, distribution["replicas"])
    _log_setup(params, data, distribution, ctx)
    _shard(data, distribution)
    plan = None
    with strategy.scope():
        if params.recipe == "auto":
            params, plan = _fit_to_budget(params, data, ctx, distribution)
        cfg = params.train
        compiled = build_for(data, cfg, params.model)
    _adapt_to_data(compiled.classifier, data, ctx)
    # In multi-worker training every task trains, but only the chief's model is kept and only it
    # reports to MLflow. The other tasks' outputs (checkpoints, logs) are in their own scratch
    # folder, which the runner gives them (pipeline.cluster).
    chief = distribution["is_chief"]
    if not chief:
        params = dataclasses.replace(params, tracking=dataclasses.replace(params.tracking, mlflow_uri=""))
    out = outputs.model.path
    with tracked_run(params.tracking, "train", to_dict(params)) as tracking:
        started = time.monotonic()
        guard = [plan.deadline()] if plan is not None else []  # auto's budget, whatever the machine does
        fitted = _fit_model(compiled, data, params, ctx, out, guard)
        fit_seconds = time.monotonic() - started
        if not chief:
            raise NotRegistered(
                f"{worker_id(strategy)} trained its share with the chief, which saves and registers the model"
            )
        classifier = _save(compiled.classifier, data, params, fitted, out)
        summary = _summary(fitted, classifier.count_params(), averaged=cfg.ema_epochs > 0)
        summary["fit_seconds"] = round(fit_seconds, 1)  # training itself: the stage also loads, builds, saves
        if plan is not None:
            figures, note = plan.check(fit_seconds, summary["epochs_run"], guard[0].stopped_at)
            summary.update(figures)
            summary["notes"].append(note)
        summary["distribution"] = distribution
        if tracking is not None:
            log_folder(out)
    if tuned:
        summary["notes"].append("trained with the tuned " + ", ".join(f"{k}={v}" for k, v in tuned.items()))
    _record(outputs, summary, params, data)
    return summary


def _with_tuned_values(inputs: Inputs, params: Params, ctx: StageContext) -> tuple[Params, dict]:
    """The params with the tune stage's best values over the config (the trials' models are not
    used), and those values ({} without a tune stage)."""
    tuned = inputs.hyperparameters.values if inputs.hyperparameters is not None else {}
    if tuned:
        params = apply_values(params, tuned)
        ctx.log("with the tune stage's best hyperparameters: " + ", ".join(f"{k}={v}" for k, v in tuned.items()))
    return params, tuned


def _seed_and_precision(params: Params) -> None:
    """The process-wide settings training runs under (``run`` restores them afterwards)."""
    cfg = params.train
    keras.utils.set_random_seed(params.seed)
    if params.input.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(training_policy(cfg.mixed_precision))


def _check_batch_splits(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise UserError(
            f"train.batch_size {batch_size} is the global batch and must split evenly over the {replicas} "
            f"replicas; use a multiple of {replicas}"
        )


def _log_setup(params: Params, data: TrainingData, distribution: dict, ctx: StageContext) -> None:
    """One line with the model, the optimizer and the distribution, as the run will use them."""
    cfg, replicas = params.train, distribution["replicas"]
    scaled = (
        f" ({cfg.learning_rate:g} {cfg.learning_rate_scaling}-scaled from batch {cfg.learning_rate_batch})"
        if cfg.learning_rate_scaling != "none"
        else ""
    )
    ctx.log(
        f"model {params.model.name} {params.model.args or ''}, weights {params.model.weights}, "
        f"{cfg.optimizer} at {cfg.peak_learning_rate():g}{scaled}, {cfg.schedule} schedule; strategy "
        f"{distribution['strategy']} with {replicas} replicas, global batch {cfg.batch_size} "
        f"({cfg.batch_size // replicas} per replica)"
        + (f", cluster {distribution['cluster']}" if distribution["cluster"] else "")
    )
    if data.val is None:
        ctx.log(f"no val split: all {cfg.epochs} epochs run without early stopping, and the last epoch's model is kept")


def _shard(data: TrainingData, distribution: dict) -> None:
    """In a cluster, each worker reads its own share of the train and val splits."""
    if distribution["cluster"]:
        data.train = shard_for_workers(data.train, data.examples, "train", distribution)
        if data.val is not None:
            data.val = shard_for_workers(data.val, data.examples, "val", distribution)


def _fit_model(compiled: Compiled, data: TrainingData, params: Params, ctx: StageContext, out, guard) -> Fitted:
    """Fits once, or in two phases (head, then fine-tuning) when the model starts from
    pretrained weights and has a backbone to freeze."""
    backbone = finetune.find_backbone(compiled.classifier) if params.model.weights != "none" else None
    if backbone is not None:
        return _fit_in_two_phases(compiled, backbone, data, params, ctx, out, guard)
    return _fit(compiled.trainee, data, params, ctx, out, "backup", params.train.epochs, extra=guard)


def _save(classifier: keras.Model, data: TrainingData, params: Params, fitted: Fitted, out) -> keras.Model:
    """Writes the Model artifact's files; returns the classifier saved (float32 whatever the
    training precision)."""
    if training_policy(params.train.mixed_precision) != "float32":
        classifier = _float32(classifier, data, params)
    classifier.save(out / Model.KERAS)
    data.spec.save(out / Model.PREPROCESSING)
    (out / Model.CLASSES).write_text(json.dumps(data.classes))
    (out / "history.json").write_text(json.dumps(fitted.history, indent=2))
    (out / "params.json").write_text(json.dumps(to_dict(params), indent=2))  # the effective settings
    return classifier


def _record(outputs: Outputs, summary: dict, params: Params, data: TrainingData) -> None:
    """The Model artifact's properties: the summary's figures and what evaluate and export need."""
    outputs.model.properties.update(
        {k: v for k, v in summary.items() if k != "notes"},
        model_name=params.model.name,
        classes=data.classes,
        multi_label=data.multi_label,
        input_shape=list(data.spec.input_shape),
        cache=data.cache.kind,
    )


def _fit_to_budget(params: Params, data: TrainingData, ctx: StageContext, distribution: dict):
    """recipe auto: the epochs that fit train.time_budget_minutes (components/train/budget.py)."""
    if distribution["cluster"]:  # every task would time its own steps and could choose other epochs
        ctx.log(f"auto: multi-worker training runs the {params.train.epochs} epochs auto chose, untimed")
        return params, None
    params, plan = budget.fit_to_budget(params, data, ctx)
    keras.utils.set_random_seed(params.seed)  # the timed copy drew weights: the model starts as without it
    return params, plan


@dataclasses.dataclass
class Fitted:
    history: dict[str, list[float]]
    best: BestEpoch | None  # which epoch's model is kept and why; None without a val split


def _fit(
    trainee: keras.Model,
    data: TrainingData,
    params: Params,
    ctx: StageContext,
    out,
    backup: str,
    epochs: int,
    initial_epoch: int = 0,
    extra: Sequence[keras.callbacks.Callback] = (),
) -> Fitted:
    callbacks = training_callbacks(
        params.train,
        ctx,
        out / "logs",
        ctx.scratch_dir / backup,
        epochs,
        data.steps_per_epoch,
        val=data.val,
        rule=keep_rule(data.examples, labels=len(data.classes) if data.multi_label else 0)
        if data.val is not None
        else None,
        initial_epoch=initial_epoch,
    )
    # shuffle=False only tells Keras not to warn: its own shuffling never applies to a
    # tf.data input, which shuffles itself (input.shuffle_buffer).
    history = trainee.fit(
        data.train,
        validation_data=data.val,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        steps_per_epoch=data.steps_per_epoch if data.fixed_steps else None,
        callbacks=callbacks.all + ([EpochMetrics()] if params.tracking.mlflow_uri else []) + list(extra),
        verbose=params.train.verbose,
    )
    return Fitted({k: [float(v) for v in values] for k, values in history.history.items()}, callbacks.best)


def _fit_in_two_phases(
    compiled: Compiled, backbone, data: TrainingData, params: Params, ctx: StageContext, out, extra=()
) -> Fitted:
    cfg, head_epochs = params.train, params.train.finetune.head_epochs
    head_weights = ctx.scratch_dir / "head_phase.weights.h5"
    history: dict[str, list[float]] = {}
    if head_epochs and head_weights.is_file():  # a rerun after a kill in phase 2
        compiled.classifier.load_weights(head_weights)
        ctx.log("phase 1 (head on the frozen backbone) was done before the run stopped; its weights are reused")
    elif head_epochs:
        finetune.freeze(backbone)
        compile_model(
            compiled.trainee, cfg, len(data.classes), data.steps_per_epoch, head_epochs, multi_label=data.multi_label
        )
        ctx.log(f"phase 1: {head_epochs} epochs training the head on the frozen backbone")
        history = _fit(compiled.trainee, data, params, ctx, out, "backup_head", head_epochs, extra=extra).history
        compiled.classifier.save_weights(head_weights)
    trained = finetune.unfreeze_top(backbone, cfg.finetune.unfreeze)
    compile_model(
        compiled.trainee,
        cfg,
        len(data.classes),
        data.steps_per_epoch,
        cfg.epochs,
        cfg.finetune.learning_rate_scale,
        data.multi_label,
    )
    ctx.log(
        f"phase 2: {cfg.epochs} epochs fine-tuning {trained} backbone layers (BatchNorm frozen) at "
        f"{cfg.finetune.learning_rate_scale:g} x the learning rate"
    )
    tuned = _fit(
        compiled.trainee, data, params, ctx, out, "backup_finetune", head_epochs + cfg.epochs, head_epochs, extra
    )
    return Fitted({k: history.get(k, []) + tuned.history.get(k, []) for k in tuned.history}, tuned.best)


def _adapt_to_data(classifier: keras.Model, data: TrainingData, ctx: StageContext) -> None:
    if any(hasattr(layer, "adapt_from_data") for layer in classifier._flatten_layers()):
        images = data.sample_images(ADAPT_IMAGES)
        for name in adapt_to_data(classifier, images):
            ctx.log(f"{name}: initialised from {len(images):,} training images")


def _float32(classifier: keras.Model, data: TrainingData, params: Params) -> keras.Model:
    """The trained classifier rebuilt in float32 with its weights: exports are float32."""
    keras.mixed_precision.set_global_policy("float32")
    twin = build_classifier(data.spec, len(data.classes), params.model, multi_label=data.multi_label)
    twin.set_weights(classifier.get_weights())
    return twin


def _summary(fitted: Fitted, parameters: int, averaged: bool) -> dict:
    best, history = fitted.best, fitted.history
    if best is None:  # no val split: the last epoch's model (its EMA, when on) is kept
        epochs = len(history["loss"])
        kept: dict[str, float | str] = {"epochs_run": epochs, "best_epoch": epochs, "loss": history["loss"][-1]}
        kept["accuracy"] = history["accuracy"][-1]  # of the raw weights, while they trained
        model = "the EMA weights" if averaged else "the model"
        note = f"kept {model} of epoch {epochs} (the last: there is no val split)"
        note += f", train accuracy {kept['accuracy']:.4f}"
    else:
        # Epoch numbers count from the run's start, also after a resume or a head phase.
        epochs = best.last_epoch + 1
        if best.kept is None:  # fit ran an epoch with a val split, and every such epoch keeps a model
            raise RuntimeError("training with a val split kept no model")
        kept = {"epochs_run": epochs, "best_epoch": best.kept.epoch + 1, "kept_weights": best.kept.weights}
        kept.update(val_loss=best.kept.loss, val_accuracy=best.kept.accuracy, val_majority_rate=best.rule.majority_rate)
        note = f"{best.note()}, val_accuracy {best.kept.accuracy:.4f}"
    return {
        **{k: float(v) if isinstance(v, float) else v for k, v in kept.items()},
        "params": parameters,
        "notes": [f"{epochs} epoch{'s' if epochs != 1 else ''}; {note}"],
    }
