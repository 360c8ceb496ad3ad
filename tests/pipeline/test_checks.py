"""pipeline.checks: the one rule that turns checks into a verdict, the records artifacts store
(and the forms written before them), and stage statuses through the metadata store."""

from __future__ import annotations

import json

import pytest

from visionpipe.pipeline.artifacts import Blessing, ExportedModel, InfraBlessing, Verdict
from visionpipe.pipeline.checks import SUCCESS, Check, Outcome, StageStatus, read_check, verdict
from visionpipe.pipeline.metadata import MetadataStore

# passed, failed, undecided (inconclusive), not checked, not set
P, F, U, N, S = Outcome.PASSED, Outcome.FAILED, Outcome.INCONCLUSIVE, Outcome.NOT_CHECKED, Outcome.NOT_SET


def checks(*outcomes: Outcome) -> list[Check]:
    return [Check(f"check {i}", outcome, f"why {i}") for i, outcome in enumerate(outcomes)]


@pytest.mark.parametrize(
    ("outcomes", "expected", "deciding"),
    [
        ((), P, []),
        ((P,), P, []),
        ((N,), P, []),  # a check that could not apply neither passes nor fails the list
        ((S,), P, []),
        ((P, N, S), P, []),
        ((F,), F, [0]),
        ((U,), U, [0]),
        ((P, U, N), U, [1]),
        ((U, F), F, [1]),  # a failure outweighs inconclusive checks
        ((F, P, U, F, S, N), F, [0, 3]),  # every failed check, in order, and only those
        ((U, P, U, S), U, [0, 2]),
    ],
)
def test_the_verdict_rule(outcomes, expected, deciding):
    listed = checks(*outcomes)
    outcome, decided_by = verdict(listed)
    assert outcome is expected and decided_by == [listed[i] for i in deciding]


def test_every_outcome_combination_follows_the_rule():
    """All 2^5 sets of outcomes: FAILED iff one failed, else INCONCLUSIVE iff one was, else PASSED."""
    every = list(Outcome)
    for mask in range(2 ** len(every)):
        present = [o for bit, o in enumerate(every) if mask >> bit & 1]
        outcome, _ = verdict(checks(*present))
        assert outcome is (F if F in present else U if U in present else P), present


def test_the_blessings_verdict_is_the_rules_outcome():
    assert [Verdict.of(o) for o in (P, F, U)] == [Verdict.BLESSED, Verdict.NOT_BLESSED, Verdict.INCONCLUSIVE]
    with pytest.raises(KeyError):
        Verdict.of(N)  # the rule never gives it: no silent BLESSED


def test_a_check_round_trips_and_reads_the_forms_written_before_it():
    check = Check("accuracy", F, "accuracy 0.5 < 0.9", 0.5, 0.9)
    stored = json.loads(json.dumps(check.as_dict()))
    assert stored["outcome"] == "failed" and Check.from_dict(stored) == check
    # evaluate's blessing.json before: the outcome under "verdict"
    old_gate = {"name": "ECE", "value": 0.1, "threshold": None, "verdict": "not set", "detail": "max_ece is not set"}
    assert Check.from_dict(old_gate) == Check("ECE", S, "max_ece is not set", 0.1, None)
    # infra validation before: "check" and "status", and "skipped" for not checked
    old_infra = {"check": "real server", "status": "skipped", "detail": "turned off"}
    assert Check.from_dict(old_infra) == Check("real server", N, "turned off")
    # export's gate rows before: text
    assert read_check("tflite_int8", "failed: accuracy drop 0.0300 > 0.02") == Check(
        "tflite_int8", F, "accuracy drop 0.0300 > 0.02"
    )
    assert read_check("onnx", "passed") == Check("onnx", P)
    with pytest.raises(ValueError, match="without an outcome"):
        Check.from_dict({"name": "x"})
    with pytest.raises(ValueError):
        read_check("x", "maybe: who knows")


def test_a_check_reads_as_the_text_export_printed():
    assert str(Check("onnx", P)) == "passed"
    assert str(Check("tflite_int8", F, "size 900 KiB > 500 KiB")) == "failed: size 900 KiB > 500 KiB"


def test_artifacts_read_checks_old_and_new():
    new = Check("tflite_int8", F, "accuracy drop 0.0300 > 0.02")
    for stored in (new.as_dict(), str(new)):
        exported = ExportedModel("e", {"failed_gates": {"tflite_int8": stored}})
        assert exported.failed_gates == {"tflite_int8": new}
    infra = InfraBlessing("i", {"checks": [{"check": "warmup file", "status": "passed", "detail": "4 records"}]})
    assert infra.checks == [Check("warmup file", P, "4 records")]
    record = {"checks": [Check("ECE", S, "max_ece is not set").as_dict(), {"name": "a", "verdict": "failed"}]}
    assert [c.outcome for c in Blessing.checks_of(record)] == [S, F]


def test_stage_statuses_round_trip_through_the_metadata_store(tmp_path):
    store = MetadataStore(tmp_path / "m.sqlite")
    run = store.start_run("code", {}, "test")
    succeeded = store.start_execution(run, "a", "fp-a", {})
    store.finish_execution(succeeded, {}, {})
    cached = store.start_execution(run, "a", "fp-a", {})
    store.finish_execution(cached, {}, {}, cached=True)
    store.fail_execution(store.start_execution(run, "b", "fp-b", {}), "boom")
    store.start_execution(run, "c", "fp-c", {})
    running = [StageStatus(e["status"]) for e in store.executions_of_run(run)]
    assert running == [StageStatus.SUCCEEDED, StageStatus.CACHED, StageStatus.FAILED, StageStatus.RUNNING]
    assert StageStatus(store.runs()[0]["status"]) is StageStatus.RUNNING
    store.abandon_running()
    assert StageStatus(store.executions_of_run(run)[-1]["status"]) is StageStatus.KILLED
    assert StageStatus(store.runs()[0]["status"]) is StageStatus.KILLED
    store.finish_run(run, StageStatus.SUCCEEDED)
    row = store.runs()[0]
    store.close()
    # Stored as the plain strings written before the enum, so old stores read alike.
    assert type(row["status"]) is str and row["status"] == "succeeded"
    assert [e["status"] in SUCCESS for e in MetadataStore(tmp_path / "m.sqlite").executions_of_run(run)] == [
        True,
        True,
        False,
        False,
    ]


def test_every_stage_status_reads_back_as_itself():
    for status in StageStatus:
        assert StageStatus(str(status)) is status and f"{status}" == status.value
    assert [s for s in StageStatus if s.ok] == [StageStatus.SUCCEEDED, StageStatus.CACHED]
    assert [s for s in StageStatus if s.stopped] == [StageStatus.FAILED, StageStatus.REFUSED]
