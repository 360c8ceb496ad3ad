"""Knowledge distillation for the export stage: a small registered model (the student) learns
from the trained model (the teacher) on the train split with ``keras.distillation``; the
student, at its own temperature fitted on val, then goes through the same int8 conversion,
scoring and gates as every other file.

Both models output probabilities; their logarithms are logits up to a constant, which is what
``LogitsDistillation`` softens with its temperature, and what the student's supervised loss
(``from_logits``) reads.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from visionpipe.components.common.calibration import fit_temperature
from visionpipe.components.common.dataset import image_dataset
from visionpipe.components.common.process_state import restored_afterwards
from visionpipe.components.common.progress import TrainingProgress
from visionpipe.components.common.scoring import predict_batches
from visionpipe.components.export.config import DistillConfig
from visionpipe.models.classifier import adapt_to_data, build_classifier
from visionpipe.models.config import ModelConfig
from visionpipe.models.preprocessing import PreprocessingSpec
from visionpipe.models.temperature import with_temperature
from visionpipe.pipeline.stage import StageContext


def _log_probabilities(model: keras.Model) -> keras.Model:
    outputs = keras.layers.Activation(lambda p: keras.ops.log(keras.ops.maximum(p, 1e-7)), name="log")(model.output)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_logits")


def distillation_loss(config: DistillConfig) -> keras.distillation.LogitsDistillation:
    """KL divergence between the teacher's and the student's softened probabilities, times the
    temperature squared. Given explicitly: LogitsDistillation's default ("kl_divergence") becomes
    Keras' plain KL function, which its ``compute_loss`` does not recognise as KL, so it skips the
    softmax and reads the logits as probabilities; on log-probabilities (all <= 0, clipped to
    epsilon) that loss is exactly 0, and the student learnt from the labels alone."""
    return keras.distillation.LogitsDistillation(temperature=config.temperature, loss=keras.losses.KLDivergence())


def student_of(
    config: DistillConfig, spec: PreprocessingSpec, num_classes: int, examples: Path, seed: int
) -> keras.Model:
    """The registered student model, new (its initial weights from ``seed``), adapted to the train
    images (a whitening layer's filters)."""
    with restored_afterwards():  # the seed is this function's, not the process's
        keras.utils.set_random_seed(seed)
        student = build_classifier(spec, num_classes, ModelConfig(name=config.student, args=config.student_args))
    train = image_dataset(examples, "train", spec, num_classes, batch_size=2000)
    adapt_to_data(student, next(iter(train))[0].numpy())
    return student


def distill(
    teacher: keras.Model,
    student: keras.Model,
    config: DistillConfig,
    spec: PreprocessingSpec,
    num_classes: int,
    examples: Path,
    train_images: int,
    batch_size: int,
    seed: int,
    ctx: StageContext,
) -> keras.Model:
    """``student`` trained from the teacher and the labels (a new registered model, or the trained
    model's channel-pruned copy)."""
    with restored_afterwards():  # the seed is this function's, not the process's
        keras.utils.set_random_seed(seed)
        return _distill(teacher, student, config, spec, num_classes, examples, train_images, batch_size, seed, ctx)


def _distill(teacher, student, config, spec, num_classes, examples, train_images, batch_size, seed, ctx):
    train = image_dataset(examples, "train", spec, num_classes, batch_size)
    teacher.trainable = False
    distiller = keras.distillation.Distiller(
        teacher=_log_probabilities(teacher),
        student=_log_probabilities(student),
        distillation_losses=distillation_loss(config),
        student_loss_weight=config.student_loss_weight,
    )
    steps = math.ceil(train_images / batch_size)
    # Cosine decay to zero: ending at a small rate settles the weights (a constant rate is what
    # the student had before; BENCHMARKS.md "Channel pruning" measures both).
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.epochs * steps)
    distiller.compile(
        optimizer=keras.optimizers.AdamW(schedule),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    ctx.log(
        f"distilling into {student.name} for {config.epochs} epochs "
        f"(temperature {config.temperature:g}, labels {config.student_loss_weight:.0%} of the loss, "
        f"AdamW at {config.learning_rate:g} decaying to 0)"
    )
    shuffled = train.unbatch().shuffle(10_000, seed=seed).batch(batch_size).repeat()
    progress = TrainingProgress(ctx, config.epochs, steps, f"distilling into {student.name}")
    distiller.fit(shuffled, epochs=config.epochs, steps_per_epoch=steps, verbose=0, callbacks=[progress])
    return student


def calibrated(
    student: keras.Model,
    examples: Path,
    spec: PreprocessingSpec,
    num_classes: int,
    val_images: int,
    logit_offsets: list[float] | None = None,
):
    """The student at its own temperature, fitted on val as evaluate fits the teacher's (the
    teacher's temperature says nothing about the student's confidence), plus the teacher's prior
    correction (``logit_offsets``: it depends on the train prior, which both learnt); (model,
    temperature, what was done, for the log). Without a val split the temperature stays 1."""
    if not val_images:
        corrected = with_temperature(student, 1.0, logit_offsets=logit_offsets)
        return corrected, 1.0, "the distilled file carries no temperature: there is no val split to fit one on"
    val = image_dataset(examples, "val", spec, num_classes, batch_size=256)
    labels, probabilities = predict_batches(val, student.predict_on_batch, one_hot=True)
    temperature = fit_temperature(probabilities, labels)
    return (
        with_temperature(student, temperature, logit_offsets=logit_offsets),
        temperature,
        f"the distilled file divides its logits by its own temperature {temperature:.3f}, fitted on val"
        + (", and adds the teacher's prior correction" if logit_offsets is not None else ""),
    )
