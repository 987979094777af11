"""The SQLite records backend: stdlib :mod:`sqlite3`, WAL mode, one file.

Writes are batched (one transaction per few thousand rows or per second),
so recording costs little even for very large graphs.  Several processes
may write to one database at once (WAL, ``BEGIN IMMEDIATE``, a busy
timeout).  A run whose process died (SIGKILL, power loss) is left marked
``running``; the next open on the same host sees that its process is gone
and marks it ``interrupted``.

A new database is created readable by its owner only (0600: it holds
arguments, logs and tracebacks) and marked with ``PRAGMA application_id``;
a file that is not a records database (another program's, or a board) is
refused with :class:`RecordsError` before anything in it is changed.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._paths import expand_path
from .._sqlite_files import (
    RECORDS_ID,
    ForeignDatabaseError,
    check_ours,
    create_private,
    mark_ours,
)
from ._schema import MIGRATIONS, migrate
from ._sqlite_browse import SQLiteBrowsing
from .store import (
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

__all__ = ["RecordStore"]

_RUN_COLUMNS = (
    "id, root, target, script, argv, args, host, user, pid, no_act, workers, "
    "started, finished, outcome, jobs, ok, changed, failed, blocked, session, round"
)


#: The tables of a records database (one from before the application_id
#: mark is recognised by them).
_TABLES = ("graphs", "runs", "jobs", "job_details", "logs")


class RecordStore(SQLiteBrowsing):
    """The records database at ``path`` (created with its directory).

    Opening it migrates the schema to the current version and marks runs of
    dead processes on this host ``interrupted``.  Reading: :meth:`runs`,
    :meth:`run`, :meth:`jobs`, :meth:`job`, :meth:`logs`, :meth:`graph`.
    Use as a context manager or call :meth:`close`.

    ``foreign_keys``: enforce the schema's foreign keys on this connection
    (so that deleting a run deletes its jobs and logs).  The records
    listener opens its store without: every row it writes belongs to the run
    row it inserted itself, and checking each one costs ~5% of a run of
    trivial jobs.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0, foreign_keys: bool = True,
    ) -> None:
        self.path = expand_path(path)
        self.foreign_keys = foreign_keys
        try:
            create_private(self.path)
            self.conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as err:
            raise RecordsError(self.path, f"cannot open ({err})") from err
        try:
            self._setup(timeout)
            self.reap()
        except ForeignDatabaseError as err:
            self.conn.close()
            raise RecordsError(
                self.path, f"not a records database: {err}",
                "give the path of a records database, or of a new file",
            ) from err
        except sqlite3.Error as err:
            self.conn.close()
            raise RecordsError(self.path, f"not a usable records database ({err})") from err

    def _setup(self, timeout: float) -> None:
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # Before any write or pragma that changes the file: is it ours?
        unmarked = check_ours(conn, RECORDS_ID, _TABLES)
        deadline = time.monotonic() + timeout
        while True:  # switching to WAL is refused while another opens it
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA foreign_keys = {'ON' if self.foreign_keys else 'OFF'}")
        if unmarked:
            mark_ours(conn, RECORDS_ID)
        migrate(conn, MIGRATIONS)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so writers queue cleanly)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # Writing (the records listener's RecordsWriter) -----------------------
    def start_run(self, row: RunRow) -> int:
        with self.write() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (root, target, script, argv, args, host, user, pid, "
                "pid_start, no_act, workers, started, jobs, session, round, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (*row[:9], int(row.no_act), *row[10:]),
            )
            return int(cursor.lastrowid or 0)

    def write_batch(
        self,
        run_id: int,
        graph: GraphRow | None,
        jobs: list[Any],
        details: list[tuple[Any, ...]],
        logs: list[tuple[Any, ...]],
        end: RunEnd | None,
    ) -> None:
        with self.write() as conn:
            if graph is not None:
                digest, root, data = graph
                row = conn.execute("SELECT id FROM graphs WHERE digest = ?", (digest,)).fetchone()
                graph_id = row[0] if row is not None else conn.execute(
                    "INSERT INTO graphs (digest, root, data) VALUES (?, ?, ?)",
                    (digest, root, data()),
                ).lastrowid
                conn.execute("UPDATE runs SET graph_id = ? WHERE id = ?", (graph_id, run_id))
            _insert_flat(conn, "INSERT OR REPLACE INTO jobs VALUES ", 7, jobs)
            _insert_many(conn, "INSERT OR REPLACE INTO job_details VALUES ", 6, details)
            _insert_many(
                conn,
                "INSERT INTO logs (run_id, job, phase, attempt, created, level, logger, "
                "message) VALUES ",
                8,
                logs,
            )
            if end is not None:
                conn.execute(
                    "UPDATE runs SET finished = ?, outcome = ?, ok = ?, changed = ?, "
                    "failed = ?, blocked = ? WHERE id = ?",
                    (*end, run_id),
                )

    # ------------------------------------------------------------------
    def reap(self) -> list[int]:
        """Mark runs still ``running`` whose process on this host is gone as
        ``interrupted``; return their ids."""
        host = this_host()
        rows = self.conn.execute(
            "SELECT id, pid, pid_start FROM runs WHERE outcome = 'running' AND host = ?",
            (host,),
        ).fetchall()
        dead = [rid for rid, pid, start in rows if not process_alive(pid, start)]
        if dead:
            with self.write() as conn:
                for rid in dead:
                    conn.execute(
                        "UPDATE runs SET outcome = 'interrupted', finished = COALESCE("
                        "(SELECT MAX(started + duration) FROM jobs WHERE run_id = ?), started)"
                        " WHERE id = ? AND outcome = 'running'",
                        (rid, rid),
                    )
                    self._update_counts(conn, rid)
        return dead

    @staticmethod
    def _update_counts(conn: sqlite3.Connection, run_id: int) -> None:
        conn.execute(
            "UPDATE runs SET "
            "ok = (SELECT COUNT(*) FROM jobs WHERE run_id = :r AND status = 'ok'), "
            "changed = (SELECT COUNT(*) FROM jobs WHERE run_id = :r AND status = 'changed'), "
            "failed = (SELECT COUNT(*) FROM jobs WHERE run_id = :r AND status = 'failed'), "
            "blocked = (SELECT COUNT(*) FROM jobs WHERE run_id = :r AND status = 'blocked') "
            "WHERE id = :r",
            {"r": run_id},
        )

    # Reading ------------------------------------------------------------
    def runs(self, root: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The most recent runs (of ``root`` only, if given), newest first."""
        where, params = ("WHERE root = ?", [root]) if root else ("", [])
        rows = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [_run_record(row) for row in rows]

    def _select_runs(self, tail: str, params: list[Any]) -> list[RunRecord]:
        rows = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs{tail}", params).fetchall()
        return [_run_record(row) for row in rows]

    def run(self, run_id: int | str) -> RunRecord:
        """One run by id; ``"last"`` (or ``-1``) is the newest, ``-2`` the
        one before.  Raises :class:`RecordsError` when there is none."""
        rid = self.resolve(run_id)
        row = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (rid,)
        ).fetchone()
        return _run_record(row)

    def resolve(self, run_id: int | str) -> int:
        """The numeric id of ``run_id`` (an id, ``last``, or ``-N``)."""
        text = str(run_id).strip().lower()
        try:
            number = -1 if text == "last" else int(text)
        except ValueError:
            raise RecordsError(
                self.path, f"{run_id!r} is not a run id", "give a number, -N or 'last'"
            ) from None
        if number < 0:
            row = self.conn.execute(
                "SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?", (-number - 1,)
            ).fetchone()
        else:
            row = self.conn.execute("SELECT id FROM runs WHERE id = ?", (number,)).fetchone()
        if row is None:
            raise RecordsError(
                self.path, f"no run {run_id}", "`dojobber history` lists the runs kept"
            )
        return int(row[0])

    def jobs(self, run_id: int | str, status: str | None = None) -> list[JobRecord]:
        """The jobs of a run in the order they were part of it."""
        rid = self.resolve(run_id)
        sql = (
            "SELECT j.run_id, j.name, j.status, j.tries, j.started, j.duration, "
            "d.result, d.exception, d.traceback, d.phases FROM jobs j LEFT JOIN job_details d "
            "ON d.run_id = j.run_id AND d.idx = j.idx WHERE j.run_id = ?"
        )
        params: list[Any] = [rid]
        if status:
            sql += " AND j.status = ?"
            params.append(status)
        return [_job_record(row) for row in self.conn.execute(sql + " ORDER BY j.idx", params)]

    def job(self, run_id: int | str, name: str) -> JobRecord:
        """One job of a run (with tries, phases, exception, traceback)."""
        rid = self.resolve(run_id)
        row = self.conn.execute(
            "SELECT j.run_id, j.name, j.status, j.tries, j.started, j.duration, "
            "d.result, d.exception, d.traceback, d.phases FROM jobs j LEFT JOIN job_details d "
            "ON d.run_id = j.run_id AND d.idx = j.idx WHERE j.run_id = ? AND j.name = ?",
            (rid, name),
        ).fetchone()
        if row is None:
            raise RecordsError(
                self.path, f"run {rid} has no job {name!r}", f"`dojobber show {rid}` lists its jobs"
            )
        return _job_record(row)

    def logs(self, run_id: int | str, job: str | None = None) -> list[LogLine]:
        """Log lines of a run (of one job, if given), in the order made."""
        rid = self.resolve(run_id)
        sql = (
            "SELECT job, phase, attempt, created, level, logger, message, seq FROM logs "
            "WHERE run_id = ?"
        )
        params: list[Any] = [rid]
        if job is not None:
            sql += " AND job = ?"
            params.append(job)
        return [LogLine(*row) for row in self.conn.execute(sql + " ORDER BY seq", params)]

    def graph_data(self, run_id: int | str) -> dict[str, Any] | None:
        """The stored graph of a run: ``{"names": [...], "deps": [[i, ...], ...]}``
        (dependencies by index, jobs in dependency order), or None."""
        rid = self.resolve(run_id)
        row = self.conn.execute(
            "SELECT g.data FROM runs r JOIN graphs g ON g.id = r.graph_id WHERE r.id = ?",
            (rid,),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[4] = json.loads(values[4]) if values[4] else []
    values[5] = json.loads(values[5]) if values[5] else None
    values[9] = bool(values[9])
    values[14:19] = [v or 0 for v in values[14:19]]
    return RunRecord(*values)


def _job_record(row: tuple[Any, ...]) -> JobRecord:
    run_id, name, status, tries, started, duration, result, exception, tb, phases = row
    return JobRecord(
        run_id, name, status, tries, started, duration, result, exception, tb,
        json.loads(phases) if phases else [],
    )


#: Rows per multi-row INSERT: 100 x 8 values stays below SQLite's oldest
#: limit of 999 bound values.
_CHUNK = 100


def _insert_many(
    conn: sqlite3.Connection, head: str, width: int, rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples of ``width`` values); see :func:`_insert_flat`."""
    _insert_flat(conn, head, width, list(itertools.chain.from_iterable(rows)))


def _insert_flat(conn: sqlite3.Connection, head: str, width: int, values: list[Any]) -> None:
    """Insert rows given as one flat list of ``width`` values per row, with
    ``head`` + ``VALUES`` lists of ``_CHUNK`` rows at a time: a third faster
    than ``executemany`` (less per-row work)."""
    if not values:
        return
    one = "(" + ", ".join("?" * width) + ")"
    step = _CHUNK * width
    full = len(values) - len(values) % step
    if full:
        stmt = head + ", ".join([one] * _CHUNK)
        for start in range(0, full, step):
            conn.execute(stmt, values[start : start + step])
    if full < len(values):
        rest = values[full:]
        conn.execute(head + ", ".join([one] * (len(rest) // width)), rest)
