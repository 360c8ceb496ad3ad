"""tune executor: a KerasTuner search (Hyperband, Bayesian optimisation or random search) over
config keys, within a trial and time budget, resumable and safe.

- The tuner's folder is ``<tune.directory>/<search key>``, the key a hash of the search
  space, the tuner settings, the base config and the data version. An identical search
  resumes (KerasTuner reloads its finished trials and reruns the one a kill interrupted); a
  changed one starts afresh, and the log says what changed. (KerasTuner itself would silently
  keep an old space in the same folder.)
- A trial that raises is recorded as failed with its error; the stage fails, listing those
  errors, unless at least one trial completed. (KerasTuner returns normally.)
- ``tune.max_seconds`` stops the search cleanly after the trial that crosses it.
- The search's state files are replaced whole, never rewritten in place, so a kill at any
  moment leaves a search that resumes.
- Output: ``best_hyperparameters.txt`` in TFX's format (``HyperParameters.get_config()``
  JSON, KerasTuner's own ``tuner/*`` values removed), ``trials.csv`` and ``objective.png``.
  The train stage applies the values and retrains: no trial's model is shipped, and the
  checkpoints of every trial but the best are deleted.
- Distributed: KerasTuner's chief/worker protocol (``KERASTUNER_TUNER_ID``,
  ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``) over a shared ``tune.directory``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.src.distribute.oracle_client import OracleClient
from keras_tuner.src.engine.stateful import Stateful

from visionpipe.components.common.tracking import tracked_run
from visionpipe.components.tune.hypermodel import ConfigHyperModel, config_values, describe
from visionpipe.components.tune.spec import Inputs, Outputs, Params
from visionpipe.pipeline import fingerprint as fp
from visionpipe.pipeline.artifacts import HyperParameters
from visionpipe.pipeline.config import to_dict
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.stage import StageContext

TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
SEARCH_FILE = "search.json"  # what a search folder searched: its key's parts, to say what changed
SECONDS_FILE = "trial_seconds.json"


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    cfg = params.tune.resolved(inputs.examples.multi_label)
    if not cfg.space:
        raise UserError(
            "tune.space is empty: give it the config keys to search, e.g. {train.learning_rate: {log: [0.0001, 0.01]}}"
        )
    if not inputs.statistics.counts.get("val"):
        raise UserError("the tune stage scores trials on the val split, which is empty; set data.split.val above 0")
    parts = {
        "space": cfg.space,
        "tuner": {k: v for k, v in to_dict(cfg).items() if k not in ("enabled", "space", "max_seconds", "directory")},
        "base config": {k: v for k, v in to_dict(params.base).items() if k != "tracking"},
        "data": inputs.examples.fingerprint,
    }
    key = fp.digest(parts)[:16]
    folder = Path(params.directory) / key
    _say_what_changed(Path(params.directory), key, parts, ctx)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SEARCH_FILE).write_text(json.dumps(parts, indent=2, default=str))

    hypermodel = ConfigHyperModel(params.base, cfg.space, inputs, ctx, cfg.max_epochs)
    tuner = _make_tuner(cfg, hypermodel, folder, ctx)
    finished = sum(t.status == "COMPLETED" for t in tuner.all_trials())
    if finished:
        ctx.log(f"resuming search {key}: {finished} trials already finished are kept")
    with tracked_run(params.base.tracking, f"tune {key}", {"search": key, **cfg.space}):
        try:
            tuner.search()
        except RuntimeError as err:  # KerasTuner gives up after tune's consecutive failed trials
            if "consecutive failures" not in str(err):
                raise
        return _report(tuner, outputs.best_hyperparameters, cfg, key, ctx)


def _make_tuner(cfg, hypermodel, folder: Path, ctx: StageContext):
    common = {
        "hypermodel": hypermodel,
        "objective": kt.Objective(cfg.objective, "max" if cfg.maximise else "min"),
        "directory": str(folder.parent),
        "project_name": folder.name,
        "overwrite": False,
        "executions_per_trial": cfg.executions_per_trial,
        "max_consecutive_failed_trials": cfg.max_trials,  # failures are reported, not fatal early
    }
    _check_saved_state(folder)
    if cfg.tuner == "hyperband":
        tuner = budgeted(TUNERS["hyperband"], max_epochs=cfg.max_epochs, factor=cfg.hyperband_factor, **common)
        tuner.oracle.max_trials = cfg.max_trials  # Hyperband's brackets, capped at the trial budget
    else:
        tuner = budgeted(TUNERS[cfg.tuner], max_trials=cfg.max_trials, **common)
    if not isinstance(tuner.oracle, OracleClient):  # a worker's oracle lives in the chief
        tuner.oracle.__class__ = type(type(tuner.oracle).__name__, (_AtomicSaves, type(tuner.oracle)), {})
    tuner.report_to(ctx, cfg)
    return tuner


class _AtomicSaves:
    """KerasTuner writes ``oracle.json`` and each ``trial.json`` in place, so a search killed
    while saving left an empty file that no later run could reload. Mixed into the oracle's
    class: each file is written beside itself, then renamed over the old one."""

    def save(self):
        _replace(Path(self._get_oracle_fname()), lambda path: Stateful.save(self, str(path)))

    def _save_trial(self, trial):
        _replace(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", lambda path: trial.save(str(path)))


def _replace(path: Path, write) -> None:
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    os.replace(partial, path)


def _check_saved_state(folder: Path) -> None:
    """A search folder's saved state must load (one damaged before saves were atomic would fail
    deep inside KerasTuner); otherwise say which file and what to do."""
    for state in [folder / "oracle.json", *sorted(folder.glob("trial_*/trial.json"))]:
        if not state.is_file():
            continue
        try:
            json.loads(state.read_text())
        except ValueError:
            raise UserError(
                f"the search's saved state {state} is damaged (a run killed while writing it); move {folder} "
                "away to start this search anew, or change tune settings to start another"
            ) from None


def budgeted(base: type, **kwargs):
    """A tuner of class ``base`` that logs a line per trial and keeps the time budget."""
    return type(f"Budgeted{base.__name__}", (_Budget, base), {})(**kwargs)


class _Budget:
    # Attributes of the KerasTuner class this is mixed into (``budgeted``).
    oracle: Any
    project_dir: str

    def _populate_initial_space(self):
        # KerasTuner builds a model here to discover conditional hyperparameters; a config
        # space has none, and a build that fails (a bad value) belongs to a trial, not here.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def report_to(self, ctx: StageContext, cfg) -> None:
        self._ctx, self._cfg, self._started = ctx, cfg, time.monotonic()
        self._seconds_file = Path(self.project_dir) / SECONDS_FILE
        self._seconds = json.loads(self._seconds_file.read_text()) if self._seconds_file.is_file() else {}
        self.ran: list = []  # the trials this process ran, as the oracle recorded them
        self.best_seen = None  # the search's best trial when this process last asked

    # A distributed worker asks the chief nothing once the chief has told it to stop: the chief
    # exits when every worker has been told, and a call to it then waits for an hour
    # (KerasTuner's gRPC calls wait for the chief to come up). So a worker reports from what
    # it learnt while it ran trials.
    def all_trials(self) -> list:
        """Every trial of the search; a distributed worker knows only the ones it ran."""
        if isinstance(self.oracle, OracleClient):
            return list(self.ran)
        return sorted(self.oracle.trials.values(), key=lambda t: int(t.trial_id))

    def best_trial(self):
        """The search's best trial (for a distributed worker: the best when it ran its last)."""
        if isinstance(self.oracle, OracleClient):
            return self.best_seen
        best = self.oracle.get_best_trials(1)
        return best[0] if best else None

    def on_trial_begin(self, trial):
        self._trial_started = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        seconds = time.monotonic() - self._trial_started
        self._seconds[trial.trial_id] = round(seconds, 1)
        self._seconds_file.write_text(json.dumps(self._seconds))
        trial = self.oracle.get_trial(trial.trial_id)  # as the oracle recorded it, with its score
        self.ran.append(trial)
        best = self.oracle.get_best_trials(1)
        self.best_seen = best[0] if best else self.best_seen
        elapsed = time.monotonic() - self._started
        left = max(self._cfg.max_trials - int(trial.trial_id) - 1, 0)
        eta = elapsed / len(self.ran) * left
        if self._cfg.max_seconds:
            eta = min(eta, max(self._cfg.max_seconds - elapsed, 0))
        score = f"{trial.score:.4f}" if trial.score is not None else trial.status.lower()
        self._ctx.log(
            f"trial {int(trial.trial_id) + 1}/{self._cfg.max_trials}: {describe(config_values(trial.hyperparameters))} "
            f"-> {self._cfg.objective} {score} ({seconds:.0f} s); best "
            f"{f'{best[0].score:.4f}' if best and best[0].score is not None else 'none yet'}; ETA {eta / 60:.0f} min"
        )
        if self._cfg.max_seconds and elapsed > self._cfg.max_seconds and not isinstance(self.oracle, OracleClient):
            self._ctx.log(f"tune.max_seconds={self._cfg.max_seconds:g} reached: no more trials start")
            self.oracle.max_trials = len(self.oracle.trials)


def _say_what_changed(directory: Path, key: str, parts: dict, ctx: StageContext) -> None:
    searches = sorted(directory.glob(f"*/{SEARCH_FILE}"), key=lambda p: p.stat().st_mtime) if directory.is_dir() else []
    if (directory / key / SEARCH_FILE).is_file():
        return
    previous = [p for p in searches if p.parent.name != key]
    if previous:
        last = json.loads(previous[-1].read_text())
        changed = [name for name in parts if json.dumps(parts[name], default=str) != json.dumps(last.get(name))]
        ctx.log(f"a new search {key}: the {' and the '.join(changed)} changed since search {previous[-1].parent.name}")
    else:
        ctx.log(f"a new search {key} in {directory}")


def _report(tuner, artifact: HyperParameters, cfg, key: str, ctx: StageContext) -> dict:
    trials = tuner.all_trials()
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    failed = [t for t in trials if t.status in ("FAILED", "INVALID")]
    if not completed:
        errors = "; ".join(f"trial {int(t.trial_id) + 1}: {_last_line(t.message)}" for t in failed) or "none ran"
        raise UserError(f"no trial of the search completed ({len(failed)} failed): {errors}")
    best_trial = tuner.best_trial()
    best = best_trial.hyperparameters
    config = best.get_config()
    config["values"] = config_values(best)
    (artifact.path / HyperParameters.FILE).write_text(json.dumps(config))
    _write_trials(trials, tuner, artifact.path / "trials.csv", cfg)
    _plot(completed, artifact.path / "objective.png", cfg.objective, cfg.maximise)
    for trial_dir in Path(tuner.project_dir).glob("trial_*"):  # the train stage retrains; keep the best only
        if trial_dir.name != f"trial_{best_trial.trial_id}":
            for checkpoint in trial_dir.glob("checkpoint*"):
                checkpoint.unlink() if checkpoint.is_file() else shutil.rmtree(checkpoint)
    values = config_values(best)
    artifact.properties.update(values=values, best_score=best_trial.score, search=key, trials=len(trials))
    note = (
        f"best of {len(trials)} trials ({len(completed)} completed, {len(failed)} failed): {describe(values)} -> "
        f"{cfg.objective} {best_trial.score:.4f}; the train stage retrains with these values"
    )
    ctx.log(note)
    return {"best_score": float(best_trial.score), "trials": len(trials), "failed_trials": len(failed), "notes": [note]}


def _last_line(message: str | None) -> str:
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error recorded"


def _write_trials(trials, tuner, path: Path, cfg) -> None:
    seconds_file = Path(tuner.project_dir) / SECONDS_FILE
    seconds = json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}
    keys = list(cfg.space)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "status", cfg.objective, "epochs", "seconds", *keys])
        for t in trials:
            values = t.hyperparameters.values
            writer.writerow(
                [int(t.trial_id) + 1, t.status, "" if t.score is None else t.score,
                 values.get("tuner/epochs", cfg.max_epochs), seconds.get(t.trial_id, ""),
                 *(values.get(k, "") for k in keys)]
            )  # fmt: skip


def _plot(completed, path: Path, objective: str, maximise: bool) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numbers = [int(t.trial_id) + 1 for t in completed]
    scores = [t.score for t in completed]
    pick = max if maximise else min
    running = [pick(scores[: i + 1]) for i in range(len(scores))]
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(numbers, scores, "o", label="trial")
    ax.step(numbers, running, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend()
    fig.savefig(path, dpi=80)
