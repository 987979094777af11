"""What the SQLite and PostgreSQL records backends share: the SQL.

Both backends keep the same five tables (PostgreSQL's named ``records_*``,
next to the board's) and read them with the same statements; each backend
says only how to run a statement (:meth:`SQLRecords._rows`,
:meth:`SQLRecords._transaction`), its table prefix and its parameter
mark, and how another process's commits are noticed
(:meth:`~dojobber.records.Browsable.change_marker`).  Statements are
written with ``{runs}``-style table names and ``?`` marks.

Reading: the :class:`~dojobber.records.Store` interface (runs, one run,
its jobs, logs and graph) and :class:`~dojobber.records.Browsable` (pages
of runs under filters, trends, job states and log lines after a given line,
for the web view).  Writing: the run row, its graph, its end, and marking
runs of dead processes ``interrupted``; the job and log rows themselves are
each backend's fastest bulk insert.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..results import RunOutcome
from .store import (
    RUNNING,
    GraphRow,
    JobRecord,
    LogLine,
    RecordsError,
    RunEnd,
    RunRecord,
    RunRow,
    process_alive,
    this_host,
)

__all__ = ["SQLRecords"]

T = TypeVar("T")

_RUN_COLUMNS = (
    'id, root, target, script, argv, args, host, "user", pid, no_act, workers, '
    "started, finished, outcome, jobs, ok, changed, failed, blocked, session, round"
)

_JOB_SELECT = (
    "SELECT j.run_id, j.name, j.status, j.tries, j.started, j.duration, d.result, d.exception,"
    " d.traceback, d.phases, d.plan FROM {jobs} j LEFT JOIN {job_details} d"
    " ON d.run_id = j.run_id AND d.idx = j.idx WHERE j.run_id = ?"
)

_LOG_SELECT = ("SELECT job, phase, attempt, created, level, logger, message, seq FROM {logs}"
               " WHERE run_id = ?")

_COUNT = "(SELECT count(*) FROM {jobs} WHERE run_id = ? AND status = '%s')"


@functools.lru_cache(maxsize=256)
def _dialect(template: str, prefix: str, mark: str) -> str:
    tables = {t: prefix + t for t in ("graphs", "runs", "jobs", "job_details", "logs")}
    return template.format(**tables).replace("?", mark)


class SQLRecords:
    """The records reading and run-row writing both backends share; a
    backend subclass sets :attr:`_PREFIX` and :attr:`_MARK` and runs
    statements with :meth:`_rows` and :meth:`_transaction`."""

    path: str
    #: Put before every table name (PostgreSQL shares a database with the board).
    _PREFIX = ""
    #: The driver's parameter mark.
    _MARK = "?"

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement (already in the backend's dialect)."""
        raise NotImplementedError

    def _transaction(self, body: Callable[[Any], T]) -> T:
        """Call ``body(connection)`` inside one write transaction."""
        raise NotImplementedError

    def _sql(self, template: str) -> str:
        """``template`` in this backend's table names and parameter marks."""
        return _dialect(template, self._PREFIX, self._MARK)

    def _read(self, template: str, *params: Any) -> list[tuple[Any, ...]]:
        return self._rows(self._sql(template), params)

    # Writing the run row ------------------------------------------------
    def start_run(self, row: RunRow) -> int:
        """Insert a run; returns its id."""
        sql = self._sql(
            'INSERT INTO {runs} (root, target, script, argv, args, host, "user", pid,'
            " pid_start, no_act, workers, started, jobs, session, round, outcome) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id")
        values = (*row[:9], bool(row.no_act), *row[10:])

        def body(conn: Any) -> int:
            run_id = int(conn.execute(sql, values).fetchone()[0])
            self._written(conn)
            return run_id

        return self._transaction(body)

    def _link_graph(self, conn: Any, run_id: int, graph: GraphRow) -> None:
        """Link the run to its graph, storing the graph if no run did yet."""
        digest, root, data = graph
        got = conn.execute(self._sql("SELECT id FROM {graphs} WHERE digest = ?"),
                           (digest,)).fetchone()
        if got is None:
            got = conn.execute(self._sql(
                "INSERT INTO {graphs} (digest, root, data) VALUES (?, ?, ?)"
                " ON CONFLICT (digest) DO UPDATE SET root = excluded.root RETURNING id"),
                (digest, root, data())).fetchone()
        conn.execute(self._sql("UPDATE {runs} SET graph_id = ? WHERE id = ?"),
                     (got[0], run_id))

    def _end_run(self, conn: Any, run_id: int, end: RunEnd) -> None:
        conn.execute(self._sql(
            "UPDATE {runs} SET finished = ?, outcome = ?, ok = ?, changed = ?, failed = ?,"
            " blocked = ? WHERE id = ?"), (*end, run_id))

    def reap(self) -> list[int]:
        """Mark runs still ``running`` whose process on this host is gone as
        ``interrupted`` (with the counts of the jobs they wrote); return
        their ids."""
        rows = self._read("SELECT id, pid, pid_start FROM {runs}"
                          " WHERE outcome = 'running' AND host = ?", this_host())
        dead = [int(rid) for rid, pid, start in rows if not process_alive(pid, start)]
        if not dead:
            return dead
        counts = ", ".join(f"{status} = {_COUNT % status}"
                           for status in ("ok", "changed", "failed", "blocked"))
        sql = self._sql(
            "UPDATE {runs} SET outcome = 'interrupted', finished = COALESCE("
            "(SELECT max(started + duration) FROM {jobs} WHERE run_id = ?), started), "
            f"{counts} WHERE id = ? AND outcome = 'running'")

        def body(conn: Any) -> None:
            for rid in dead:
                conn.execute(sql, (rid,) * 6)
            self._written(conn)

        self._transaction(body)
        return dead

    def _written(self, conn: Any) -> None:
        """Tell readers in other processes that records changed (a backend
        whose readers notice commits by themselves does nothing)."""

    # Reading (Store) ------------------------------------------------------
    def runs(self, root: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The most recent runs (of ``root`` only, if given), newest first."""
        return self.find_runs(root=root or None, limit=limit, count=False)[0]

    def run(self, run_id: int | str) -> RunRecord:
        """One run by id; ``"last"`` (or ``-1``) is the newest, ``-2`` the
        one before, ``HOST:PID`` the newest of that process.  Raises
        :class:`RecordsError` when there is none."""
        rid = self.resolve(run_id)
        return _run_record(self._read(f"SELECT {_RUN_COLUMNS} FROM {{runs}} WHERE id = ?",
                                      rid)[0])

    def resolve(self, run_id: int | str) -> int:
        """The numeric id of ``run_id``: an id, ``last``, ``-N``, or
        ``HOST:PID`` (the newest run of that process on that host)."""
        text = str(run_id).strip()
        host, colon, pid = text.rpartition(":")
        if colon and host and pid.isdigit():
            rows = self._read("SELECT id FROM {runs} WHERE host = ? AND pid = ?"
                              " ORDER BY id DESC LIMIT 1", host, int(pid))
        else:
            try:
                number = -1 if text.lower() == "last" else int(text)
            except ValueError:
                raise RecordsError(self.path, f"{run_id!r} is not a run id",
                                   "give a number, -N, 'last' or HOST:PID") from None
            if number < 0:
                rows = self._read("SELECT id FROM {runs} ORDER BY id DESC LIMIT 1 OFFSET ?",
                                  -number - 1)
            else:
                rows = self._read("SELECT id FROM {runs} WHERE id = ?", number)
        if not rows:
            raise RecordsError(self.path, f"no run {run_id}",
                               "`dojobber history` lists the runs kept")
        return int(rows[0][0])

    def jobs(self, run_id: int | str, status: str | None = None) -> list[JobRecord]:
        """The jobs of a run in the order they were part of it."""
        rid = self.resolve(run_id)
        if status:
            rows = self._read(_JOB_SELECT + " AND j.status = ? ORDER BY j.idx", rid, status)
        else:
            rows = self._read(_JOB_SELECT + " ORDER BY j.idx", rid)
        return [_job_record(row) for row in rows]

    def job(self, run_id: int | str, name: str) -> JobRecord:
        """One job of a run (with tries, phases, exception, traceback)."""
        rid = self.resolve(run_id)
        rows = self._read(_JOB_SELECT + " AND j.name = ?", rid, name)
        if not rows:
            raise RecordsError(self.path, f"run {rid} has no job {name!r}",
                               f"`dojobber show {rid}` lists its jobs")
        return _job_record(rows[0])

    def logs(self, run_id: int | str, job: str | None = None) -> list[LogLine]:
        """Log lines of a run (of one job, if given), in the order made."""
        rid = self.resolve(run_id)
        if job is not None:
            rows = self._read(_LOG_SELECT + " AND job = ? ORDER BY seq", rid, job)
        else:
            rows = self._read(_LOG_SELECT + " ORDER BY seq", rid)
        return [LogLine(*row) for row in rows]

    def graph_data(self, run_id: int | str) -> dict[str, Any] | None:
        """The stored graph of a run: ``{"names": [...], "deps": [[i, ...], ...]}``
        (dependencies by index, jobs in dependency order), or None."""
        rows = self._read("SELECT g.data FROM {runs} r JOIN {graphs} g ON g.id = r.graph_id"
                          " WHERE r.id = ?", self.resolve(run_id))
        return None if not rows else dict(json.loads(rows[0][0]))

    # Browsing (Browsable) -------------------------------------------------
    def find_runs(
        self,
        *,
        root: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
        count: bool = True,
    ) -> tuple[list[RunRecord], int]:
        """One page of the runs under the filters (start time ``since`` <=
        started < ``until``), newest first, and how many match in all
        (with ``count``; else the number on the page)."""
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
        rows = self._read(f"SELECT {_RUN_COLUMNS} FROM {{runs}}{where}"
                          " ORDER BY id DESC LIMIT ? OFFSET ?", *params, limit, offset)
        runs = [_run_record(row) for row in rows]
        if not count:
            return runs, len(runs)
        total = self._read(f"SELECT count(*) FROM {{runs}}{where}", *params)[0][0]
        return runs, int(total)

    def roots(self) -> list[str]:
        """Every root job with a recorded run, by name."""
        return [r for (r,) in self._read("SELECT DISTINCT root FROM {runs} ORDER BY root")]

    def trend(self, run_id: int, length: int = 12) -> list[tuple[int, str, int]]:
        """``(id, outcome, failed + blocked)`` of run ``run_id`` and up to
        ``length - 1`` runs before it of the same root with the same stored
        arguments, oldest first.  Dry runs (``no_act``) before it are left
        out: they change nothing, so they say nothing about converging."""
        rows = self._read(
            "SELECT r.id, r.outcome, COALESCE(r.failed, 0) + COALESCE(r.blocked, 0)"
            " FROM {runs} r, {runs} t WHERE t.id = ? AND r.root = t.root AND r.id <= t.id"
            " AND r.args IS NOT DISTINCT FROM t.args AND (NOT r.no_act OR r.id = t.id)"
            " ORDER BY r.id DESC LIMIT ?",
            run_id, length)
        return [(int(i), o if o == RUNNING else RunOutcome.read(o).value, int(b))
                for i, o, b in reversed(rows)]

    def job_states(self, run_id: int | str) -> dict[str, tuple[str, int, float | None]]:
        """``{name: (status, tries, duration)}`` of the jobs recorded so far
        (the cheap form of :meth:`jobs`, for following a running run)."""
        rows = self._read("SELECT name, status, tries, duration FROM {jobs} WHERE run_id = ?",
                          self.resolve(run_id))
        return {name: (status, tries, duration) for name, status, tries, duration in rows}

    def log_lines(
        self, run_id: int | str, *, job: str | None = None, after: int = 0,
        last: int | None = None, limit: int = 1000,
    ) -> list[LogLine]:
        """Log lines (with their ``seq``) of a run or one of its jobs: the
        first ``limit`` written after line ``after``, or the ``last`` ones."""
        sql = _LOG_SELECT + " AND seq > ?"
        params: list[Any] = [self.resolve(run_id), after]
        if job is not None:
            sql += " AND job = ?"
            params.append(job)
        if last is not None:
            rows = self._read(sql + " ORDER BY seq DESC LIMIT ?", *params, last)
            return [LogLine(*row) for row in reversed(rows)]
        return [LogLine(*row) for row in self._read(sql + " ORDER BY seq LIMIT ?",
                                                    *params, limit)]


def _run_record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[0] = int(values[0])
    values[4] = json.loads(values[4]) if values[4] else []
    values[5] = json.loads(values[5]) if values[5] else None
    values[9] = bool(values[9])
    values[14:19] = [v or 0 for v in values[14:19]]
    return RunRecord(*values)


def _job_record(row: Sequence[Any]) -> JobRecord:
    run_id, name, status, tries, started, duration, result, exception, tb, phases, plan = row
    return JobRecord(int(run_id), name, status, tries, started, duration, result, exception,
                     tb, json.loads(phases) if phases else [], plan)
