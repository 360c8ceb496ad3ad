"""A KerasTuner HyperModel whose hyperparameters are config keys.

``build(hp)`` samples every ``tune.space`` key, applies the values over the train stage's
params (``components.common.search_space.apply_values``, so each trial's config is checked like a
loaded one) and builds and compiles the model through the train stage's own seam
(``components.train.recipe.build_for``); ``fit`` trains it on the train stage's own
datasets (``components.train.data``). Trials read the decoded images from the train stage's
file cache, so no trial decodes the data again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras_tuner as kt

from visionpipe.components.common.search_space import apply_values
from visionpipe.components.common.tracking import EpochMetrics, log_file, tracked_run
from visionpipe.components.train.data import TrainingData, training_data
from visionpipe.components.train.ema import EMAWeights
from visionpipe.components.train.recipe import build_for
from visionpipe.components.train.spec import Params as TrainParams
from visionpipe.models.classifier import adapt_to_data
from visionpipe.pipeline.stage import StageContext

TUNER_KEYS = "tuner/"  # KerasTuner's own values (Hyperband's epochs, bracket, round)
ADAPT_IMAGES = 2000


def sample(hp: kt.HyperParameters, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Config key -> the value ``hp`` draws from its range."""
    values = {}
    for key, spec in space.items():
        if "choice" in spec:
            values[key] = hp.Choice(key, spec["choice"])
        elif "int" in spec:
            values[key] = hp.Int(key, *spec["int"], step=spec.get("step") or 1)
        elif "log" in spec:
            values[key] = hp.Float(key, *spec["log"], sampling="log")
        else:
            values[key] = hp.Float(key, *spec["range"], step=spec.get("step"))
    return values


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def config_values(hp: kt.HyperParameters) -> dict[str, Any]:
    """The config keys' values of ``hp``, without KerasTuner's own."""
    return {k: v for k, v in hp.values.items() if not k.startswith(TUNER_KEYS)}


class ConfigHyperModel(kt.HyperModel):
    def __init__(self, base: TrainParams, space: dict[str, dict[str, Any]], inputs, ctx: StageContext, epochs: int):
        super().__init__(name="visionpipe")
        self._base, self._space, self._inputs, self._ctx, self._epochs = base, space, inputs, ctx, epochs
        self._data: dict[str, TrainingData] = {}
        self._trial: tuple[TrainParams, TrainingData] | None = None

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        sample(hp, self._space)

    def trial_params(self, hp: kt.HyperParameters) -> TrainParams:
        params = apply_values(self._base, sample(hp, self._space))
        # The epochs this trial trains for (Hyperband sets them per bracket), and a file cache
        # that every trial and the train stage share.
        epochs = hp.values.get("tuner/epochs", self._epochs)
        return dataclasses.replace(
            params,
            train=dataclasses.replace(params.train, epochs=epochs),
            input=dataclasses.replace(
                params.input, cache="file" if params.input.cache == "auto" else params.input.cache
            ),
        )

    def build(self, hp: kt.HyperParameters):
        params = self.trial_params(hp)
        data = self._datasets(params)
        compiled = build_for(data, params.train, params.model)
        adapt_to_data(compiled.classifier, data.sample_images(ADAPT_IMAGES))
        self._trial = (params, data)
        return compiled.trainee

    def fit(self, hp, model, *args, **kwargs):
        params, data = self._trial
        tracking = params.tracking
        with tracked_run(tracking, f"trial: {describe(config_values(hp))}", config_values(hp), nested=True) as run:
            history = model.fit(
                data.train,
                validation_data=data.val,
                epochs=kwargs.get("epochs", params.train.epochs),
                initial_epoch=kwargs.get("initial_epoch", 0),
                steps_per_epoch=data.steps_per_epoch if data.fixed_steps else None,
                callbacks=self._ema(params)
                + kwargs.get("callbacks", [])
                + ([EpochMetrics()] if run is not None else []),
                shuffle=False,
                verbose=0,
            )
            if run is not None:  # the trial's model, as its weights
                weights = self._ctx.scratch_dir / "trial.weights.h5"
                weights.parent.mkdir(parents=True, exist_ok=True)
                model.save_weights(weights)
                log_file(weights)
        return history

    @staticmethod
    def _ema(params: TrainParams) -> list:
        """A trial with an EMA is scored on the averaged weights, as train validates them (the raw
        weights' second validation pass is left out: the trial's score is the average's)."""
        return [EMAWeights()] if params.train.ema_epochs > 0 else []

    def _datasets(self, params: TrainParams) -> TrainingData:
        """The datasets for a trial's params; rebuilt only when what they depend on changes."""
        train = params.train
        key = repr(
            (
                params.preprocessing,
                params.input,
                train.batch_size,
                train.augment,
                train.class_balance,
                train.steps_per_epoch,
            )
        )
        if key not in self._data:
            self._data[key] = training_data(self._inputs, params, self._ctx)
        return self._data[key]
