"""SQLite metadata store: runs, executions, artifacts and lineage under the run root.

Modelled on ML Metadata (which does not install here): an execution records one stage run;
events link it to the artifacts it read (``input``) and wrote (``output``). Only a stage that
succeeded registers output artifacts, in one transaction, so a crashed stage leaves nothing
that a later run could mistake for a result.

Artifact locations are stored relative to the run root (the store's folder), so a root moved
or copied elsewhere (another disk, machine or bucket) reads its own files, never the original
root's. Stores written before that kept absolute locations: opening one rewrites each, by its
``artifacts/...`` part, relative to the root (``_RELATIVE_FROM``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from visionpipe.pipeline.artifacts import Artifact, artifact_type
from visionpipe.pipeline.checks import SUCCESS, StageStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL, finished REAL, status TEXT,
    code_version TEXT, config TEXT, command TEXT);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER, stage TEXT, fingerprint TEXT,
    status TEXT, cached INTEGER DEFAULT 0, started REAL, finished REAL, summary TEXT, error TEXT,
    data_key TEXT);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT, uri TEXT, properties TEXT,
    fingerprint TEXT, created REAL);
CREATE TABLE IF NOT EXISTS events (
    execution_id INTEGER, artifact_id INTEGER, kind TEXT, name TEXT);
CREATE INDEX IF NOT EXISTS executions_by_stage ON executions (stage, fingerprint, status);
"""


_RELATIVE_FROM = "artifacts/"  # every artifact lives under <run root>/artifacts/<stage>/<execution>/


class MetadataStore:
    def __init__(self, path: str | Path):
        self.root = Path(path).parent.absolute()  # the run root: artifact locations are relative to it
        self.root.mkdir(parents=True, exist_ok=True)
        # One connection per process; stages run sequentially in the runner's process.
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(executions)")}
        if "data_key" not in columns:  # stores made before executions recorded their data
            self._db.execute("ALTER TABLE executions ADD COLUMN data_key TEXT")
        if "removed" not in {row["name"] for row in self._db.execute("PRAGMA table_info(artifacts)")}:
            self._db.execute("ALTER TABLE artifacts ADD COLUMN removed REAL")  # when gc removed its files
        self._relativise_locations()

    def _relativise_locations(self) -> None:
        """Stores made before locations were relative: each absolute one becomes its ``artifacts/...``
        part, wherever the root was when it was written (a root copied with ``cp -r`` included)."""
        rows = self._db.execute("SELECT id, uri FROM artifacts WHERE uri LIKE '/%'").fetchall()
        if not rows:  # every store written since: no transaction on each open
            return
        with self._transaction():
            for row in rows:
                at = row["uri"].rfind("/" + _RELATIVE_FROM)
                if at >= 0:
                    self._db.execute("UPDATE artifacts SET uri=? WHERE id=?", (row["uri"][at + 1 :], row["id"]))

    def stored_location(self, uri: str) -> str:
        """What the store records for an artifact at ``uri``: its path relative to the root."""
        path = Path(uri).absolute()
        if not path.is_relative_to(self.root):
            raise ValueError(f"artifact location {uri} is not under the run root {self.root}")
        return path.relative_to(self.root).as_posix()

    def location(self, stored: str) -> str:
        """The absolute path of an artifact the store records at ``stored``."""
        return str(self.root / stored)

    def close(self) -> None:
        self._db.close()

    # runs ---------------------------------------------------------------------------------
    def start_run(self, code_version: str, config: dict[str, Any], command: str) -> int:
        cur = self._db.execute(
            "INSERT INTO runs (started, status, code_version, config, command) VALUES (?,?,?,?,?)",
            (time.time(), StageStatus.RUNNING, code_version, json.dumps(config), command),
        )
        return _inserted_id(cur)

    def finish_run(self, run_id: int, status: StageStatus) -> None:
        self._db.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id))

    def runs(self, limit: int = 20) -> list[sqlite3.Row]:
        return self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def executions_of_run(self, run_id: int) -> list[sqlite3.Row]:
        return self._db.execute("SELECT * FROM executions WHERE run_id=? ORDER BY id", (run_id,)).fetchall()

    # executions ---------------------------------------------------------------------------
    def start_execution(
        self, run_id: int, stage: str, fingerprint: str, inputs: dict[str, Artifact], data_key: str = ""
    ) -> int:
        """``data_key`` identifies the data the execution read (its inputs and external source)."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO executions (run_id, stage, fingerprint, status, started, data_key) VALUES (?,?,?,?,?,?)",
                (run_id, stage, fingerprint, StageStatus.RUNNING, time.time(), data_key),
            )
            execution_id = _inserted_id(cur)
            self._add_events(execution_id, "input", inputs.items())
        return execution_id

    def finish_execution(
        self, execution_id: int, outputs: dict[str, Artifact], summary: dict[str, Any], cached: bool = False
    ) -> None:
        """Marks an execution succeeded (or cached) and registers its outputs atomically."""
        with self._transaction():
            for artifact in outputs.values():
                if artifact.id is None:
                    cur = self._db.execute(
                        "INSERT INTO artifacts (type, uri, properties, fingerprint, created) VALUES (?,?,?,?,?)",
                        (
                            artifact.TYPE,
                            self.stored_location(artifact.uri),
                            json.dumps(artifact.properties),
                            artifact.fingerprint,
                            time.time(),
                        ),
                    )
                    artifact.id = _inserted_id(cur)
            self._add_events(execution_id, "output", outputs.items())
            self._db.execute(
                "UPDATE executions SET status=?, cached=?, finished=?, summary=? WHERE id=?",
                (
                    StageStatus.CACHED if cached else StageStatus.SUCCEEDED,
                    int(cached),
                    time.time(),
                    json.dumps(summary),
                    execution_id,
                ),
            )

    def fail_execution(self, execution_id: int, error: str) -> None:
        self._db.execute(
            "UPDATE executions SET status=?, finished=?, error=? WHERE id=?",
            (StageStatus.FAILED, time.time(), error, execution_id),
        )

    def abandon_running(self) -> None:
        """Executions left 'running' by a killed process are marked so; they registered nothing."""
        for table in ("executions", "runs"):
            self._db.execute(f"UPDATE {table} SET status=? WHERE status=?", (StageStatus.KILLED, StageStatus.RUNNING))

    # lookups ------------------------------------------------------------------------------
    def cached_outputs(self, stage: str, fingerprint: str) -> dict[str, Artifact] | None:
        """Outputs of the newest successful execution with this fingerprint, if still on disk."""
        row = self._db.execute(
            "SELECT id FROM executions WHERE stage=? AND fingerprint=? AND status=? ORDER BY id DESC LIMIT 1",
            (stage, fingerprint, StageStatus.SUCCEEDED),
        ).fetchone()
        if row is None:
            return None
        outputs = self.artifacts_of(row["id"], "output")
        if not all(a.available for a in outputs.values()):
            return None
        return outputs

    def succeeded_summary(self, stage: str, fingerprint: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT summary FROM executions WHERE stage=? AND fingerprint=? AND status=? ORDER BY id DESC LIMIT 1",
            (stage, fingerprint, StageStatus.SUCCEEDED),
        ).fetchone()
        return json.loads(row["summary"]) if row and row["summary"] else {}

    def latest_outputs(self, stage: str) -> tuple[int, dict[str, Artifact]] | None:
        row = self._db.execute(
            "SELECT id FROM executions WHERE stage=? AND status IN (?,?) ORDER BY id DESC LIMIT 1",
            (stage, *SUCCESS),
        ).fetchone()
        if row is None:
            return None
        return row["id"], self.artifacts_of(row["id"], "output")

    def previous_output(
        self, stage: str, artifact_type: type[Artifact], other_than_data_key: str | None = None
    ) -> Artifact | None:
        """The newest artifact of this type the stage produced itself (not from cache), optionally
        from data other than ``other_than_data_key``; None if there is none on disk."""
        rows = self._db.execute(
            "SELECT id FROM executions WHERE stage=? AND status=? AND (? IS NULL OR data_key != ?) ORDER BY id DESC",
            (stage, StageStatus.SUCCEEDED, other_than_data_key, other_than_data_key),
        ).fetchall()
        for row in rows:
            found = [a for a in self.artifacts_of(row["id"], "output").values() if isinstance(a, artifact_type)]
            if found and found[0].available:
                return found[0]
        return None

    def artifacts_of(self, execution_id: int, kind: str) -> dict[str, Artifact]:
        rows = self._db.execute(
            "SELECT e.name, a.* FROM events e JOIN artifacts a ON a.id = e.artifact_id "
            "WHERE e.execution_id=? AND e.kind=?",
            (execution_id, kind),
        ).fetchall()
        return {r["name"]: self._artifact(r) for r in rows}

    def input_sources(self, execution_id: int) -> list[tuple[str, str, str]]:
        """(input name, stage that produced it, that stage's output name) of an execution."""
        rows = self._db.execute(
            "SELECT i.name AS input, x.stage, o.name AS output FROM events i "
            "JOIN events o ON o.artifact_id = i.artifact_id AND o.kind = 'output' "
            "JOIN executions x ON x.id = o.execution_id AND x.status = ? "
            "WHERE i.execution_id = ? AND i.kind = 'input' ORDER BY i.name",
            (StageStatus.SUCCEEDED, execution_id),
        ).fetchall()
        return [(r["input"], r["stage"], r["output"]) for r in rows]

    def lineage(self, artifact_id: int) -> list[dict[str, Any]]:
        """The chain of executions and artifacts that led to an artifact, newest first."""
        chain, frontier, seen = [], [artifact_id], set()
        while frontier:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            producer = self._db.execute(
                "SELECT x.* FROM events e JOIN executions x ON x.id = e.execution_id "
                "WHERE e.artifact_id=? AND e.kind='output' AND x.status=? "
                "ORDER BY x.id LIMIT 1",
                (current, StageStatus.SUCCEEDED),
            ).fetchone()
            if producer is None:
                continue
            inputs = self.artifacts_of(producer["id"], "input")
            chain.append(
                {
                    "artifact_id": current,
                    "stage": producer["stage"],
                    "execution_id": producer["id"],
                    "inputs": {n: a.id for n, a in inputs.items()},
                }
            )
            frontier.extend(a.id for a in inputs.values() if a.id is not None)  # read from the store: always set
        return chain

    # helpers ------------------------------------------------------------------------------
    def _artifact(self, row: sqlite3.Row) -> Artifact:
        cls = artifact_type(row["type"])
        uri, removed = self.location(row["uri"]), row["removed"] is not None
        properties = json.loads(row["properties"])
        return cls(uri=uri, properties=properties, fingerprint=row["fingerprint"], id=row["id"], removed=removed)

    # garbage collection (visionpipe/gc.py decides; the store records) ---------------------------
    def artifacts(self) -> list[Artifact]:
        """Every artifact the store records, removed ones included, oldest first."""
        return [self._artifact(r) for r in self._db.execute("SELECT * FROM artifacts ORDER BY id")]

    def artifact_ids_of_runs(self, run_ids: Iterable[int]) -> set[int]:
        """The artifacts the executions of these runs read or wrote (cached ones included)."""
        ids = list(run_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT DISTINCT e.artifact_id FROM events e JOIN executions x ON x.id = e.execution_id "
            f"WHERE x.run_id IN ({marks})",
            ids,
        )
        return {r[0] for r in rows}

    def with_sibling_outputs(self, ids: set[int]) -> set[int]:
        """``ids`` and every other output of the executions that wrote them: a stage's outputs are
        reused from the cache together or not at all."""
        rows = self._db.execute(
            "SELECT e1.artifact_id AS wanted, e2.artifact_id AS sibling FROM events e1 JOIN events e2 "
            "ON e2.execution_id = e1.execution_id AND e2.kind = 'output' WHERE e1.kind = 'output'"
        )
        return ids | {r["sibling"] for r in rows if r["wanted"] in ids}

    def latest_output_ids(self) -> set[int]:
        """What the next run resolves for each stage: the outputs of its newest successful execution."""
        stages = [r["stage"] for r in self._db.execute("SELECT DISTINCT stage FROM executions")]
        found: set[int] = set()
        for stage in stages:
            latest = self.latest_outputs(stage)
            found.update(a.id for a in (latest[1].values() if latest else ()) if a.id is not None)
        return found

    def mark_removed(self, ids: Iterable[int]) -> None:
        """Records, in one transaction and before any file goes, that these artifacts' files are
        being removed: from then on no run reads them, whatever state the files are in."""
        now = time.time()
        with self._transaction():
            self._db.executemany("UPDATE artifacts SET removed=? WHERE id=?", [(now, i) for i in ids])

    def _add_events(self, execution_id: int, kind: str, items: Iterable[tuple[str, Artifact]]) -> None:
        self._db.executemany(
            "INSERT INTO events (execution_id, artifact_id, kind, name) VALUES (?,?,?,?)",
            [(execution_id, a.id, kind, name) for name, a in items],
        )

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The row id of the INSERT ``cur`` just ran (sqlite3 sets it after every INSERT)."""
    if cur.lastrowid is None:
        raise RuntimeError("sqlite3 returned no row id for an INSERT")
    return cur.lastrowid
