"""Reading the run records for the web view: filtered, paged, incremental.

:class:`~dojobber.records.RecordStore` reads one run at a time; the web view
also needs a page of runs under filters with their total, each run's trend
among earlier runs of the same root and arguments, and what changed in a
running run since the last look.  These are plain SQL on the store's
connection (the records schema, version 1), each a single indexed query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..records import RecordStore, RunRecord

__all__ = ["RunFilter", "count_runs", "find_runs", "job_states", "logs_after", "roots", "trends"]

_RUN_COLUMNS = (
    "id, root, target, script, argv, args, host, user, pid, no_act, workers, "
    "started, finished, outcome, jobs, ok, changed, failed, blocked"
)
#: Runs in a trend (the run itself and the ones before it).
TREND_LENGTH = 12


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: by root, outcome and start time (seconds)."""

    root: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.root:
            clauses.append("root = ?")
            params.append(self.root)
        if self.outcome:
            clauses.append("outcome = ?")
            params.append(self.outcome)
        if self.since is not None:
            clauses.append("started >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("started < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def find_runs(store: RecordStore, where: RunFilter, limit: int, offset: int) -> list[RunRecord]:
    """One page of runs under ``where``, newest first."""
    sql, params = where.where()
    rows = store.conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs{sql} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    return [_run_record(row) for row in rows]


def count_runs(store: RecordStore, where: RunFilter) -> int:
    sql, params = where.where()
    return int(store.conn.execute(f"SELECT COUNT(*) FROM runs{sql}", params).fetchone()[0])


def roots(store: RecordStore) -> list[str]:
    """Every root with a recorded run (from the index, not the table)."""
    return [r for (r,) in store.conn.execute("SELECT DISTINCT root FROM runs ORDER BY root")]


def trends(store: RecordStore, runs: list[RunRecord]) -> dict[int, list[dict[str, Any]]]:
    """Per run: it and up to ``TREND_LENGTH - 1`` earlier runs of the same
    root with the same (stored, masked) arguments, oldest first, as
    ``{id, outcome, bad}`` (``bad``: failed + blocked jobs)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        rows = store.conn.execute(
            "SELECT id, outcome, COALESCE(failed, 0) + COALESCE(blocked, 0) FROM runs "
            "WHERE root = ? AND id <= ? AND args IS (SELECT args FROM runs WHERE id = ?) "
            "ORDER BY id DESC LIMIT ?",
            (run.root, run.id, run.id, TREND_LENGTH),
        ).fetchall()
        out[run.id] = [{"id": i, "outcome": o, "bad": b} for i, o, b in reversed(rows)]
    return out


def job_states(store: RecordStore, run_id: int) -> dict[str, tuple[str, int, float | None]]:
    """``{name: (status, tries, duration)}`` of the jobs recorded so far."""
    rows = store.conn.execute(
        "SELECT name, status, tries, duration FROM jobs WHERE run_id = ?", (run_id,)
    )
    return {name: (status, tries, duration) for name, status, tries, duration in rows}


def logs_after(
    store: RecordStore, run_id: int, seq: int, job: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Log lines of a run (of one job) written after line ``seq``."""
    sql = (
        "SELECT seq, job, phase, attempt, created, level, logger, message FROM logs "
        "WHERE run_id = ? AND seq > ?"
    )
    params: list[Any] = [run_id, seq]
    if job is not None:
        sql += " AND job = ?"
        params.append(job)
    rows = store.conn.execute(sql + " ORDER BY seq LIMIT ?", (*params, limit))
    keys = ("seq", "job", "phase", "attempt", "created", "level", "logger", "message")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def last_logs(
    store: RecordStore, run_id: int, job: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The last ``limit`` log lines of a run (of one job), oldest first."""
    sql = (
        "SELECT seq, job, phase, attempt, created, level, logger, message FROM logs "
        "WHERE run_id = ?"
    )
    params: list[Any] = [run_id]
    if job is not None:
        sql += " AND job = ?"
        params.append(job)
    rows = store.conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
    keys = ("seq", "job", "phase", "attempt", "created", "level", "logger", "message")
    return [dict(zip(keys, row, strict=True)) for row in reversed(rows)]


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[4] = json.loads(values[4]) if values[4] else []
    values[5] = json.loads(values[5]) if values[5] else None
    values[9] = bool(values[9])
    values[14:] = [v or 0 for v in values[14:]]
    return RunRecord(*values)
