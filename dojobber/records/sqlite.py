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
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .._paths import expand_path
from .._sqlite_files import (
    RECORDS_ID,
    ForeignDatabaseError,
    check_ours,
    create_private,
    mark_ours,
)
from ._schema import MIGRATIONS, migrate
from ._sql import SQLRecords
from .store import Batch, RecordsError

__all__ = ["RecordStore"]

T = TypeVar("T")

#: The tables of a records database (one from before the application_id
#: mark is recognised by them).
_TABLES = ("graphs", "runs", "jobs", "job_details", "logs")


class RecordStore(SQLRecords):
    """The records database at ``path`` (created with its directory).

    Opening it migrates the schema to the current version and marks runs of
    dead processes on this host ``interrupted``.  Reading: :meth:`runs`,
    :meth:`run`, :meth:`jobs`, :meth:`job`, :meth:`logs`, :meth:`graph_data`
    (:class:`~dojobber.records._sql.SQLRecords`, shared with PostgreSQL).
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
    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self.write() as conn:
            return body(conn)

    def write_batch(self, batch: Batch) -> None:
        run_id, graph, jobs, details, logs, end = batch
        with self.write() as conn:
            if graph is not None:
                self._link_graph(conn, run_id, graph)
            _insert_flat(conn, "INSERT OR REPLACE INTO jobs VALUES ", 7, jobs)
            _insert_many(conn, "INSERT OR REPLACE INTO job_details (run_id, idx, result, "
                         "exception, traceback, phases, plan) VALUES ", 7, details)
            _insert_many(
                conn,
                "INSERT INTO logs (run_id, job, phase, attempt, created, level, logger, "
                "message) VALUES ",
                8,
                logs,
            )
            if end is not None:
                self._end_run(conn, run_id, end)

    # Reading ------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def change_marker(self) -> int:
        """A number that changes when another connection commits to the
        database (SQLite's ``data_version``): cheap to poll."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])


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
