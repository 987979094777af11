"""The PostgreSQL records backend: the runs of many hosts in one database.

The same reading interface as SQLite (:class:`~dojobber.records.Store`)
and the writer the records listener uses
(:class:`~dojobber.records.store.RecordsWriter`).  Run ids come from one
sequence, so they are unique across hosts and ``dojobber show 42`` means
the same run everywhere; each run row says where it ran (host, user, pid),
``dojobber history`` shows it, and ``dojobber show HOST:PID`` finds the
newest run of that process.  A batch of finished jobs and log lines is
one ``COPY`` per table (a job written again falls back to an upsert),
committed durably, at the listener's pace (within about a second).

Opening the database creates or migrates its tables (see
:mod:`dojobber._postgres` for the ownership rules) and marks runs of dead
processes on this host ``interrupted``, as SQLite does.  Needs the
``postgres`` extra (psycopg 3).
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from .._postgres import NotOursError, PostgresLink, redact_url
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

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresRecordStore"]

log = logging.getLogger("dojobber.records")

#: ``MIGRATIONS[i]`` upgrades the records tables from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE records_graphs (
        id bigserial PRIMARY KEY,
        digest text NOT NULL UNIQUE,
        root text NOT NULL,
        data text NOT NULL
    );
    CREATE TABLE records_runs (
        id bigserial PRIMARY KEY,
        root text NOT NULL,
        target text NOT NULL,
        graph_id bigint REFERENCES records_graphs(id),
        script text,
        argv text,
        args text,
        host text NOT NULL,
        "user" text NOT NULL,
        pid integer NOT NULL,
        pid_start bigint,
        no_act boolean NOT NULL DEFAULT false,
        workers integer NOT NULL DEFAULT 1,
        started double precision NOT NULL,
        finished double precision,
        outcome text NOT NULL,
        jobs integer NOT NULL DEFAULT 0,
        ok integer, changed integer, failed integer, blocked integer,
        session text,
        round integer
    );
    CREATE INDEX records_runs_by_root ON records_runs (root, id);
    CREATE INDEX records_runs_running ON records_runs (host) WHERE outcome = 'running';
    CREATE INDEX records_runs_by_process ON records_runs (host, pid, id);
    CREATE TABLE records_jobs (
        run_id bigint NOT NULL REFERENCES records_runs(id) ON DELETE CASCADE,
        idx integer NOT NULL,
        name text NOT NULL,
        status text NOT NULL,
        tries integer NOT NULL,
        started double precision,
        duration double precision,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE records_job_details (
        run_id bigint NOT NULL REFERENCES records_runs(id) ON DELETE CASCADE,
        idx integer NOT NULL,
        result text,
        exception text,
        traceback text,
        phases text,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE records_logs (
        seq bigserial PRIMARY KEY,
        run_id bigint NOT NULL REFERENCES records_runs(id) ON DELETE CASCADE,
        job text NOT NULL,
        phase text NOT NULL,
        attempt integer NOT NULL,
        created double precision NOT NULL,
        level integer NOT NULL,
        logger text NOT NULL,
        message text NOT NULL
    );
    CREATE INDEX records_logs_by_job ON records_logs (run_id, job);
    """,
)

_TABLES = ["records_graphs", "records_runs", "records_jobs", "records_job_details",
           "records_logs"]

_RUN_COLUMNS = (
    'id, root, target, script, argv, args, host, "user", pid, no_act, workers, '
    "started, finished, outcome, jobs, ok, changed, failed, blocked, session, round"
)

_JOB_SELECT = (
    "SELECT j.run_id, j.name, j.status, j.tries, j.started, j.duration, d.result, d.exception,"
    " d.traceback, d.phases FROM records_jobs j LEFT JOIN records_job_details d"
    " ON d.run_id = j.run_id AND d.idx = j.idx WHERE j.run_id = %s"
)

_JOBS_UPSERT = (
    "INSERT INTO records_jobs SELECT * FROM unnest(%s::bigint[], %s::int[], %s::text[],"
    " %s::text[], %s::int[], %s::float8[], %s::float8[]) ON CONFLICT (run_id, idx) DO UPDATE"
    " SET name = EXCLUDED.name, status = EXCLUDED.status, tries = EXCLUDED.tries,"
    " started = EXCLUDED.started, duration = EXCLUDED.duration"
)

_DETAILS_UPSERT = (
    "INSERT INTO records_job_details SELECT * FROM unnest(%s::bigint[], %s::int[], %s::text[],"
    " %s::text[], %s::text[], %s::text[]) ON CONFLICT (run_id, idx) DO UPDATE"
    " SET result = EXCLUDED.result, exception = EXCLUDED.exception,"
    " traceback = EXCLUDED.traceback, phases = EXCLUDED.phases"
)

_Batch = tuple[int, "GraphRow | None", list[Any], list[tuple[Any, ...]], list[tuple[Any, ...]],
               "RunEnd | None"]

_JOB_FIELDS = "run_id, idx, name, status, tries, started, duration"
_LOG_FIELDS = "run_id, job, phase, attempt, created, level, logger, message"


def _copy(conn: psycopg.Connection[Any], table: str, fields: str, width: int,
          values: list[Any]) -> None:
    """``COPY`` rows given as one flat list of ``width`` values per row: a
    fifth of the client and server time of the same rows as one
    ``INSERT ... SELECT FROM unnest(...)`` (no per-value adaptation into
    arrays, no array parsing on the server)."""
    with conn.cursor().copy(f"COPY {table} ({fields}) FROM STDIN") as copy:
        write = copy.write_row
        for start in range(0, len(values), width):
            write(values[start : start + width])


class PostgresRecordStore:
    """The records in the PostgreSQL database at ``url``; reading as
    :class:`~dojobber.records.Store`, writing as
    :class:`~dojobber.records.store.RecordsWriter`.  ``path`` is the URL
    without its password (what messages show)."""

    def __init__(self, url: str, *, retry_for: float = 30.0) -> None:
        self.url = url
        self.path = redact_url(url)
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise RecordsError(self.path, "needs psycopg",
                               "pip install 'dojobber[postgres]'") from err
        self._link = PostgresLink(url, self._error, retry_for=retry_for)
        #: Batches for the writer thread (bounded: a slow server slows the run).
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=8)
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        try:
            self._link.ensure_schema("records", MIGRATIONS, _TABLES)
        except NotOursError as err:
            self._link.close()
            raise RecordsError(self.path, f"not a records database: {err}",
                               "give dojobber a database of its own") from None
        self.reap()

    def _error(self, message: str) -> RecordsError:
        return RecordsError(self.path, message.removeprefix(self.path + ": "),
                            "check the server, the URL and its credentials")

    def __repr__(self) -> str:
        return f"PostgresRecordStore({self.path!r})"

    def close(self) -> None:
        """Write what is queued, then let go of the connection."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._queue.put(None)
            writer.join()
        self._writer = None
        self._link.close()
        failure, self._failure = self._failure, None
        if failure is not None:  # not raised at a run's end (no run ended since)
            log.error("run records at %s: a write failed: %s", self.path, failure)

    def __enter__(self) -> PostgresRecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing -----------------------------------------------------------
    def start_run(self, row: RunRow) -> int:
        def body(conn: psycopg.Connection[Any]) -> int:
            got = conn.execute(
                'INSERT INTO records_runs (root, target, script, argv, args, host, "user", pid,'
                " pid_start, no_act, workers, started, jobs, session, round, outcome) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'running')"
                " RETURNING id", tuple(row)).fetchone()
            assert got is not None
            return int(got[0])

        return self._link.run(body)

    def write_batch(
        self,
        run_id: int,
        graph: GraphRow | None,
        jobs: list[Any],
        details: list[tuple[Any, ...]],
        logs: list[tuple[Any, ...]],
        end: RunEnd | None,
    ) -> None:
        """Hand the batch to the writer thread (so the run goes on while the
        server works); the batch that ends a run returns only when it and
        every batch before it are committed.  A failed write is raised here,
        at the next batch."""
        self._raise_failure()
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                            name="dojobber-records-postgres")
            self._writer.start()
        self._queue.put((run_id, graph, jobs, details, logs, end))
        if end is not None:
            self._queue.join()
            self._raise_failure()

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _write_loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._failure is None:  # after a failure, drop until it is seen
                    self._write_now(*batch)
            except BaseException as err:
                self._failure = err
            finally:
                self._queue.task_done()

    def _write_now(
        self,
        run_id: int,
        graph: GraphRow | None,
        jobs: list[Any],
        details: list[tuple[Any, ...]],
        logs: list[tuple[Any, ...]],
        end: RunEnd | None,
    ) -> None:
        import psycopg

        detail_columns = [list(c) for c in zip(*details, strict=True)] if details else None

        def body(conn: psycopg.Connection[Any]) -> None:
            if graph is not None:
                digest, root, data = graph
                got = conn.execute("SELECT id FROM records_graphs WHERE digest = %s",
                                   (digest,)).fetchone()
                if got is None:
                    got = conn.execute(
                        "INSERT INTO records_graphs (digest, root, data) VALUES (%s, %s, %s)"
                        " ON CONFLICT (digest) DO UPDATE SET root = EXCLUDED.root RETURNING id",
                        (digest, root, data())).fetchone()
                assert got is not None
                conn.execute("UPDATE records_runs SET graph_id = %s WHERE id = %s",
                             (got[0], run_id))
            if jobs:
                try:
                    with conn.transaction():  # a savepoint: COPY, the fast way
                        _copy(conn, "records_jobs", _JOB_FIELDS, 7, jobs)
                except psycopg.errors.UniqueViolation:  # a job written again
                    conn.execute(_JOBS_UPSERT, [jobs[i::7] for i in range(7)])
            if detail_columns:
                conn.execute(_DETAILS_UPSERT, detail_columns)
            if logs:
                _copy(conn, "records_logs", _LOG_FIELDS, 8,
                      list(itertools.chain.from_iterable(logs)))
            if end is not None:
                conn.execute(
                    "UPDATE records_runs SET finished = %s, outcome = %s, ok = %s, changed = %s,"
                    " failed = %s, blocked = %s WHERE id = %s", (*end, run_id))

        self._link.run(body)

    def reap(self) -> list[int]:
        """Mark runs still ``running`` whose process on this host is gone as
        ``interrupted``; return their ids."""
        host = this_host()

        def body(conn: psycopg.Connection[Any]) -> list[int]:
            rows = conn.execute(
                "SELECT id, pid, pid_start FROM records_runs WHERE outcome = 'running'"
                " AND host = %s", (host,)).fetchall()
            dead = [rid for rid, pid, start in rows if not process_alive(pid, start)]
            for rid in dead:
                conn.execute(
                    "UPDATE records_runs r SET outcome = 'interrupted', finished = COALESCE("
                    "(SELECT max(started + duration) FROM records_jobs WHERE run_id = r.id),"
                    " started), ok = c.ok, changed = c.changed, failed = c.failed,"
                    " blocked = c.blocked FROM (SELECT"
                    " count(*) FILTER (WHERE status = 'ok') AS ok,"
                    " count(*) FILTER (WHERE status = 'changed') AS changed,"
                    " count(*) FILTER (WHERE status = 'failed') AS failed,"
                    " count(*) FILTER (WHERE status = 'blocked') AS blocked"
                    " FROM records_jobs WHERE run_id = %s) c"
                    " WHERE r.id = %s AND r.outcome = 'running'", (rid, rid))
            return [int(rid) for rid in dead]

        return self._link.run(body)

    # Reading -----------------------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._link.run(lambda conn: conn.execute(sql, params).fetchall())

    def runs(self, root: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The most recent runs (of ``root`` only, if given), newest first."""
        if root:
            rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM records_runs WHERE root = %s"
                              " ORDER BY id DESC LIMIT %s", (root, limit))
        else:
            rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM records_runs ORDER BY id DESC"
                              " LIMIT %s", (limit,))
        return [_run_record(row) for row in rows]

    def run(self, run_id: int | str) -> RunRecord:
        rid = self.resolve(run_id)
        rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM records_runs WHERE id = %s", (rid,))
        return _run_record(rows[0])

    def resolve(self, run_id: int | str) -> int:
        """The numeric id of ``run_id``: an id, ``last``, ``-N``, or
        ``HOST:PID`` (the newest run of that process on that host)."""
        text = str(run_id).strip()
        host, colon, pid = text.rpartition(":")
        if colon and host and pid.isdigit():
            rows = self._rows("SELECT id FROM records_runs WHERE host = %s AND pid = %s"
                              " ORDER BY id DESC LIMIT 1", (host, int(pid)))
        else:
            try:
                number = -1 if text.lower() == "last" else int(text)
            except ValueError:
                raise RecordsError(self.path, f"{run_id!r} is not a run id",
                                   "give a number, -N, 'last' or HOST:PID") from None
            if number < 0:
                rows = self._rows("SELECT id FROM records_runs ORDER BY id DESC LIMIT 1"
                                  " OFFSET %s", (-number - 1,))
            else:
                rows = self._rows("SELECT id FROM records_runs WHERE id = %s", (number,))
        if not rows:
            raise RecordsError(self.path, f"no run {run_id}",
                               "`dojobber history` lists the runs kept")
        return int(rows[0][0])

    def jobs(self, run_id: int | str, status: str | None = None) -> list[JobRecord]:
        rid = self.resolve(run_id)
        if status:
            rows = self._rows(_JOB_SELECT + " AND j.status = %s ORDER BY j.idx", (rid, status))
        else:
            rows = self._rows(_JOB_SELECT + " ORDER BY j.idx", (rid,))
        return [_job_record(row) for row in rows]

    def job(self, run_id: int | str, name: str) -> JobRecord:
        rid = self.resolve(run_id)
        rows = self._rows(_JOB_SELECT + " AND j.name = %s", (rid, name))
        if not rows:
            raise RecordsError(self.path, f"run {rid} has no job {name!r}",
                               f"`dojobber show {rid}` lists its jobs")
        return _job_record(rows[0])

    def logs(self, run_id: int | str, job: str | None = None) -> list[LogLine]:
        rid = self.resolve(run_id)
        sql = ("SELECT job, phase, attempt, created, level, logger, message FROM records_logs"
               " WHERE run_id = %s")
        if job is not None:
            rows = self._rows(sql + " AND job = %s ORDER BY seq", (rid, job))
        else:
            rows = self._rows(sql + " ORDER BY seq", (rid,))
        return [LogLine(*row) for row in rows]

    def graph_data(self, run_id: int | str) -> dict[str, Any] | None:
        rid = self.resolve(run_id)
        rows = self._rows("SELECT g.data FROM records_runs r JOIN records_graphs g"
                          " ON g.id = r.graph_id WHERE r.id = %s", (rid,))
        return None if not rows else dict(json.loads(rows[0][0]))


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[0] = int(values[0])
    values[4] = json.loads(values[4]) if values[4] else []
    values[5] = json.loads(values[5]) if values[5] else None
    values[9] = bool(values[9])
    values[14:19] = [v or 0 for v in values[14:19]]
    return RunRecord(*values)


def _job_record(row: tuple[Any, ...]) -> JobRecord:
    run_id, name, status, tries, started, duration, result, exception, tb, phases = row
    return JobRecord(int(run_id), name, status, tries, started, duration, result, exception,
                     tb, json.loads(phases) if phases else [])
