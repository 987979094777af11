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
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._postgres import Listening, NotOursError, PostgresLink, redact_url, redact_urls
from ._sql import SQLRecords
from .store import Batch, RecordsError

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresRecordStore"]

log = logging.getLogger("dojobber.records")

T = TypeVar("T")

#: Every commit of records sends a ``NOTIFY`` on this channel (what
#: :meth:`PostgresRecordStore.change_marker` listens for).
CHANNEL = "dojobber_records"

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
    # Check mode: what a would-run job's Plan() said it would do.
    "ALTER TABLE records_job_details ADD COLUMN plan text",
    # No foreign keys on the per-job tables: their check is a trigger per
    # row, 60% of the cost of writing a 20 000-job run (benchmarks/README.md,
    # "Records on PostgreSQL").  Only dojobber writes these rows, always for
    # the run it just created; deleting runs still deletes their rows, with
    # one statement-level trigger.
    """
    ALTER TABLE records_jobs DROP CONSTRAINT IF EXISTS records_jobs_run_id_fkey;
    ALTER TABLE records_job_details DROP CONSTRAINT IF EXISTS records_job_details_run_id_fkey;
    ALTER TABLE records_logs DROP CONSTRAINT IF EXISTS records_logs_run_id_fkey;
    CREATE FUNCTION records_runs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM records_jobs WHERE run_id IN (SELECT id FROM gone);
        DELETE FROM records_job_details WHERE run_id IN (SELECT id FROM gone);
        DELETE FROM records_logs WHERE run_id IN (SELECT id FROM gone);
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_runs_deleted AFTER DELETE ON records_runs
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
        EXECUTE FUNCTION records_runs_deleted();
    """,
)

_TABLES = ["records_graphs", "records_runs", "records_jobs", "records_job_details",
           "records_logs"]

_JOBS_UPSERT = (
    "INSERT INTO records_jobs SELECT * FROM unnest(%s::bigint[], %s::int[], %s::text[],"
    " %s::text[], %s::int[], %s::float8[], %s::float8[]) ON CONFLICT (run_id, idx) DO UPDATE"
    " SET name = EXCLUDED.name, status = EXCLUDED.status, tries = EXCLUDED.tries,"
    " started = EXCLUDED.started, duration = EXCLUDED.duration"
)

_DETAILS_UPSERT = (
    "INSERT INTO records_job_details (run_id, idx, result, exception, traceback, phases, plan)"
    " SELECT * FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[]) ON CONFLICT (run_id, idx) DO UPDATE"
    " SET result = EXCLUDED.result, exception = EXCLUDED.exception,"
    " traceback = EXCLUDED.traceback, phases = EXCLUDED.phases, plan = EXCLUDED.plan"
)

_JOB_FIELDS = "run_id, idx, name, status, tries, started, duration"
_JOB_TYPES = ["int8", "int4", "text", "text", "int4", "float8", "float8"]
_LOG_FIELDS = "run_id, job, phase, attempt, created, level, logger, message"
_LOG_TYPES = ["int8", "text", "text", "int4", "float8", "int4", "text", "text"]


def _copy(conn: psycopg.Connection[Any], table: str, fields: str, types: list[str],
          values: list[Any]) -> None:
    """``COPY`` rows given as one flat list of ``len(types)`` values per row.

    Binary, with the column types given: psycopg then packs each value
    without looking at it (measured on 5 120 job rows: 8.6 ms of client CPU
    against 20 ms as text, which the run's own thread would otherwise wait
    for under the GIL); text ``COPY`` was already a fifth of the time of an
    ``INSERT ... SELECT FROM unnest(...)``.
    """
    width = len(types)
    with conn.cursor().copy(f"COPY {table} ({fields}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for start in range(0, len(values), width):
            write(values[start : start + width])


#: The columns of a job details row and of a log row whose text can hold
#: NUL: job names cannot (Python refuses NUL in a class name), phases are
#: ours, and the JSON columns escape it.
_DETAIL_TEXTS = (2, 3, 4, 6)
_LOG_TEXTS = (6, 7)


def _without_nul(row: tuple[Any, ...], texts: tuple[int, ...]) -> tuple[Any, ...]:
    """``row`` with each NUL in its ``texts`` columns written as the four
    characters ``\\x00``: PostgreSQL text cannot hold NUL, and one such byte
    in a log line or an exception would fail the whole batch (SQLite keeps
    it as is)."""
    if not any(row[i] and "\0" in row[i] for i in texts):
        return row
    return tuple(v.replace("\0", "\\x00") if i in texts and v else v
                 for i, v in enumerate(row))


class PostgresRecordStore(SQLRecords):
    """The records in the PostgreSQL database at ``url``; reading as
    :class:`~dojobber.records.Store`, writing as
    :class:`~dojobber.records.store.RecordsWriter`.  ``path`` is the URL
    without its password (what messages show)."""

    _PREFIX = "records_"
    _MARK = "%s"

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
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=8)
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        #: What change_marker() listens with (connected at its first call).
        self._listening = Listening(self._link, CHANNEL)
        self._changes = 0
        try:
            self._link.ensure_schema("records", MIGRATIONS, _TABLES)
            self.reap()
        except NotOursError as err:
            self._link.close()
            raise RecordsError(self.path, f"not a records database: {err}",
                               "give dojobber a database of its own") from None
        except BaseException:  # (a newer schema, a server gone): nothing left open
            self._link.close()
            raise

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
        self._listening.close()
        failure, self._failure = self._failure, None
        if failure is not None:  # not raised at a run's end (no run ended since)
            log.error("run records at %s: a write failed: %s", self.path, failure)

    def __enter__(self) -> PostgresRecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing -----------------------------------------------------------
    def _transaction(self, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        return self._link.run(body)

    def _written(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"NOTIFY {CHANNEL}")

    def write_batch(self, batch: Batch) -> None:
        """Hand the batch to the writer thread (so the run goes on while the
        server works); the batch that ends a run returns only when it and
        every batch before it are committed.  A failed write is raised here,
        at the next batch."""
        self._raise_failure()
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                            name="dojobber-records-postgres")
            self._writer.start()
        self._queue.put(batch)
        if batch.end is not None:
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
                    self._write_now(batch)
            except BaseException as err:
                self._failure = err
            finally:
                self._queue.task_done()

    def _write_now(self, batch: Batch) -> None:
        run_id, graph, jobs, details, logs, end = batch
        import psycopg

        details = [_without_nul(row, _DETAIL_TEXTS) for row in details]
        logs = [_without_nul(row, _LOG_TEXTS) if "\0" in row[7] or "\0" in row[6] else row
                for row in logs]  # (the test written out: one per log line)
        detail_columns = [list(c) for c in zip(*details, strict=True)] if details else None

        def body(conn: psycopg.Connection[Any]) -> None:
            if graph is not None:
                self._link_graph(conn, run_id, graph)
            if jobs:
                try:
                    with conn.transaction():  # a savepoint: COPY, the fast way
                        _copy(conn, "records_jobs", _JOB_FIELDS, _JOB_TYPES, jobs)
                except psycopg.errors.UniqueViolation:  # a job written again
                    conn.execute(_JOBS_UPSERT, [jobs[i::7] for i in range(7)])
            if detail_columns:
                conn.execute(_DETAILS_UPSERT, detail_columns)
            if logs:
                _copy(conn, "records_logs", _LOG_FIELDS, _LOG_TYPES,
                      list(itertools.chain.from_iterable(logs)))
            if end is not None:
                self._end_run(conn, run_id, end)
            self._written(conn)

        self._link.run(body)

    # Reading -----------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._link.run(lambda conn: conn.execute(sql, params).fetchall())

    def change_marker(self) -> int:
        """A number that changes when records were written (by any
        connection: every write sends a ``NOTIFY``, which a connection of
        its own ``LISTEN``s for); cheap to poll, no query."""
        try:
            if self._listening.heard():
                self._changes += 1
        except Exception as err:  # psycopg's, or connecting failed
            raise self._error(f"{self.path}: {redact_urls(str(err))}") from None
        return self._changes
