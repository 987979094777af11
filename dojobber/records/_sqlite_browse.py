"""The SQLite records backend's queries for browsing (the web view): pages
of runs under filters, trends, job states and log lines after a given line,
and a change counter to poll; :class:`~dojobber.records.RecordStore` has
them through :class:`SQLiteBrowsing`."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..results import RunOutcome
from .store import RUNNING, LogLine, RunRecord

__all__ = ["SQLiteBrowsing"]


class SQLiteBrowsing:
    """What :class:`~dojobber.records.Browsable` adds to the SQLite store."""

    if TYPE_CHECKING:
        conn: sqlite3.Connection

        def resolve(self, run_id: int | str) -> int: ...

        def _select_runs(self, tail: str, params: list[Any]) -> list[RunRecord]: ...

    def find_runs(
        self,
        *,
        root: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[RunRecord], int]:
        """One page of the runs under the filters (start time ``since`` <=
        started < ``until``), newest first, and how many match in all."""
        clauses: list[str] = []
        params: list[Any] = []
        if outcome == "not_converged":  # records written before outcomes said so
            clauses.append("outcome IN ('not_converged', 'failed')")
        elif outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome)
        for clause, value in (("root = ?", root), ("started >= ?", since),
                              ("started < ?", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        runs = self._select_runs(f"{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                 [*params, limit, offset])
        total = self.conn.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0]
        return runs, int(total)

    def roots(self) -> list[str]:
        """Every root job with a recorded run, by name."""
        return [r for (r,) in self.conn.execute("SELECT DISTINCT root FROM runs ORDER BY root")]

    def trend(self, run_id: int, length: int = 12) -> list[tuple[int, str, int]]:
        """``(id, outcome, failed + blocked)`` of run ``run_id`` and up to
        ``length - 1`` runs before it of the same root with the same stored
        arguments, oldest first."""
        rows = self.conn.execute(
            "SELECT id, outcome, COALESCE(failed, 0) + COALESCE(blocked, 0) FROM runs "
            "WHERE root = (SELECT root FROM runs WHERE id = :r) AND id <= :r "
            "AND args IS (SELECT args FROM runs WHERE id = :r) ORDER BY id DESC LIMIT :n",
            {"r": run_id, "n": length},
        ).fetchall()
        return [(int(i), o if o == RUNNING else RunOutcome.read(o).value, int(b))
                for i, o, b in reversed(rows)]

    def job_states(self, run_id: int | str) -> dict[str, tuple[str, int, float | None]]:
        """``{name: (status, tries, duration)}`` of the jobs recorded so far
        (the cheap form of :meth:`jobs`, for following a running run)."""
        rows = self.conn.execute(
            "SELECT name, status, tries, duration FROM jobs WHERE run_id = ?",
            (self.resolve(run_id),),
        )
        return {name: (status, tries, duration) for name, status, tries, duration in rows}

    def log_lines(
        self, run_id: int | str, *, job: str | None = None, after: int = 0,
        last: int | None = None, limit: int = 1000,
    ) -> list[LogLine]:
        """Log lines (with their ``seq``) of a run or one of its jobs: the
        first ``limit`` written after line ``after``, or the ``last`` ones."""
        sql = ("SELECT job, phase, attempt, created, level, logger, message, seq FROM logs "
               "WHERE run_id = ? AND seq > ?")
        params: list[Any] = [self.resolve(run_id), after]
        if job is not None:
            sql += " AND job = ?"
            params.append(job)
        if last is not None:
            rows = self.conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, last))
            return [LogLine(*row) for row in reversed(rows.fetchall())]
        rows = self.conn.execute(sql + " ORDER BY seq LIMIT ?", (*params, limit))
        return [LogLine(*row) for row in rows]

    def change_marker(self) -> int:
        """A number that changes when another connection commits to the
        database (SQLite's ``data_version``): cheap to poll."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])
