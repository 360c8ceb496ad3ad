"""A distributed search's worker reports from what it learnt while running trials: KerasTuner's
chief exits as soon as every worker has been told to stop, and a call to a gone chief waits (an
hour in KerasTuner). Here a real chief oracle, served over gRPC on 127.0.0.1, stops serving the
instant it tells the worker to stop, the race's worst case; the worker's report must not need it."""

from __future__ import annotations

import threading
import types
from concurrent import futures

import grpc
import keras_tuner as kt
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client

from tests.processes import free_ports
from visionpipe.components.tune.executor import _report, budgeted
from visionpipe.pipeline.artifacts import HyperParameters


class _Score(kt.HyperModel):
    """A 'model' whose objective is its hyperparameter: no training, only the protocol."""

    def declare_hyperparameters(self, hp):
        hp.Float("train.learning_rate", 0.0, 1.0)


class _ScoreTuner(kt.engine.base_tuner.BaseTuner):
    def run_trial(self, trial, *args, **kwargs):
        return {"val_accuracy": trial.hyperparameters.get("train.learning_rate")}


class _ExitsWhenAllStopped(oracle_chief.OracleServicer):
    """KerasTuner's servicer; the server stops right after answering the worker's STOPPED."""

    server: grpc.Server

    def CreateTrial(self, request, context):
        response = super().CreateTrial(request, context)
        if self.stop_triggered:
            # after this answer is sent, and not on the server's own thread (which stop() waits for)
            context.add_callback(lambda: threading.Thread(target=self.server.stop, args=(None,)).start())
        return response


def _chief(port: int, tmp_path) -> grpc.Server:
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=3)
    oracle._set_project_dir(str(tmp_path / "chief"), "search")
    space = oracle.get_space()
    _Score().declare_hyperparameters(space)  # the chief's tuner declares the space in its own process
    oracle.update_space(space)
    servicer = _ExitsWhenAllStopped(oracle)
    servicer.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, servicer.server)
    servicer.server.add_insecure_port(f"127.0.0.1:{port}")
    servicer.server.start()
    return servicer.server


def test_a_worker_reports_its_trials_after_the_chief_has_gone(tmp_path, monkeypatch):
    port = free_ports(1)[0]
    for name, value in {"KERASTUNER_TUNER_ID": "tuner0", "KERASTUNER_ORACLE_IP": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setattr(oracle_client, "TIMEOUT", 10)  # a call to the gone chief fails in 10 s, not an hour
    chief = _chief(port, tmp_path)
    try:
        worker_oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=3)
        tuner = budgeted(
            _ScoreTuner, oracle=worker_oracle, hypermodel=_Score(), directory=str(tmp_path), project_name="w"
        )
        assert isinstance(tuner.oracle, oracle_client.OracleClient)
        lines: list[str] = []
        ctx = types.SimpleNamespace(log=lines.append)
        cfg = types.SimpleNamespace(
            objective="val_accuracy", maximise=True, max_trials=3, max_epochs=1, max_seconds=0,
            space={"train.learning_rate": {}},
        )  # fmt: skip
        tuner.report_to(ctx, cfg)  # type: ignore[arg-type]
        tuner.search()
        timed_out = chief.wait_for_termination(timeout=10)
        assert not timed_out, "the chief did not exit after telling the worker to stop"
        artifact = HyperParameters(uri=str(tmp_path / "artifact"))
        artifact.path.mkdir()
        summary = _report(tuner, artifact, cfg, "key", ctx)  # type: ignore[arg-type]
    finally:
        chief.stop(grace=None)
    assert summary["trials"] == 3 and summary["failed_trials"] == 0
    assert summary["best_score"] == max(t.score for t in tuner.ran)
    assert (artifact.path / "trials.csv").read_text().count("COMPLETED") == 3
    assert lines[-1].startswith("best of 3 trials (3 completed, 0 failed)"), lines
