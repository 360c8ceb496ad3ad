"""One vocabulary for every check in the system and for every stage's status.

A check (evaluate's gate, an export file's gate, an infra validation step, a serving drift
check) is a ``Check``: a name, an ``Outcome``, a sentence saying why, and the measured value
and threshold where there are any. ``verdict`` is the one rule that turns a list of checks
into an outcome; each stage turns that into its own word (evaluate's Blessing says BLESSED,
NOT BLESSED or INCONCLUSIVE; infra validation blessed or not; monitor drift or none).

``StageStatus`` is what the runner reports and the metadata store records for a stage, a run
or an execution. Both enums are ``StrEnum``, so what is printed, written to JSON and stored in
SQLite is the same plain string as before they existed.

Framework layer: imports nothing from components, models or serving, and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any


class Outcome(enum.StrEnum):
    """What one check found."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"  # it ran, but on too little evidence to tell: never a pass
    NOT_CHECKED = "not checked"  # it could not apply or was turned off (the reason is its detail)
    NOT_SET = "not set"  # its limit was left unset: reported, never passed

    @classmethod
    def _missing_(cls, value: object) -> Outcome | None:
        # Infra validation wrote "skipped" before this vocabulary existed: the same idea as not checked.
        return cls.NOT_CHECKED if value == "skipped" else None


@dataclasses.dataclass
class Check:
    """One check's result. ``value`` and ``threshold`` are what was measured and the limit it
    was held to, when the check has numbers."""

    name: str
    outcome: Outcome
    detail: str = ""  # a sentence: what was found and which config key set the limit, or why not checked
    value: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form every artifact stores (``outcome`` as its plain string)."""
        return {**dataclasses.asdict(self), "outcome": str(self.outcome)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Check:
        """Reads ``as_dict``'s form, and the forms written before it: evaluate's checks (the
        outcome under ``verdict``) and infra validation's (``check``, ``status``)."""
        outcome = record.get("outcome", record.get("verdict", record.get("status")))
        if outcome is None:
            raise ValueError(f"a check record without an outcome: {dict(record)}")
        return cls(
            name=record.get("name", record.get("check", "")),
            outcome=Outcome(outcome),
            detail=record.get("detail", ""),
            value=record.get("value"),
            threshold=record.get("threshold"),
        )

    @classmethod
    def from_text(cls, name: str, text: str) -> Check:
        """Reads the text ``str()`` gives ("passed", "failed: <detail>"): how export's gate rows
        were stored before they were records."""
        word, _, detail = text.partition(": ")
        return cls(name, Outcome(word), detail)

    def __str__(self) -> str:
        """ "failed: <detail>", or the bare outcome when there is no detail ("passed")."""
        return f"{self.outcome}: {self.detail}" if self.detail else str(self.outcome)


def read_check(name: str, stored: Mapping[str, Any] | str) -> Check:
    """A check as an artifact stored it: a record (``as_dict``) or, from before records, text."""
    return Check.from_text(name, stored) if isinstance(stored, str) else Check.from_dict(stored)


def verdict(checks: Iterable[Check]) -> tuple[Outcome, list[Check]]:
    """The rule for every list of checks: FAILED if any check failed; else INCONCLUSIVE if any
    was inconclusive; else PASSED (checks not checked or not set neither pass nor fail it).
    Returns the outcome and the checks that decided it (the failed ones, else the inconclusive
    ones; none when it passed)."""
    checks = list(checks)
    for decisive in (Outcome.FAILED, Outcome.INCONCLUSIVE):
        deciding = [c for c in checks if c.outcome is decisive]
        if deciding:
            return decisive, deciding
    return Outcome.PASSED, []


class StageStatus(enum.StrEnum):
    """A stage's status in a run (``StageResult.status``), and an execution's or a run's in the
    metadata store."""

    RUNNING = "running"  # recorded while it runs
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # its outputs were reused: same params, inputs and code
    FAILED = "failed"
    REFUSED = "refused"  # its gate refused its inputs (or a GateError): nothing ran or nothing landed
    DONE_ELSEWHERE = "done elsewhere"  # a non-chief task's share, done with the chief, which registers it
    NOT_RUN = "not run"  # an earlier stage of the run did not succeed
    KILLED = "killed"  # its process died while it ran: nothing was registered

    @property
    def ok(self) -> bool:
        """Whether its outputs are there to use (succeeded or cached)."""
        return self in SUCCESS

    @property
    def stopped(self) -> bool:
        """Whether it stopped the run (failed or refused)."""
        return self in (StageStatus.FAILED, StageStatus.REFUSED)


# A tuple, not a set: membership of a plain string read back from SQLite compares by value.
SUCCESS = (StageStatus.SUCCEEDED, StageStatus.CACHED)
