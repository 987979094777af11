"""The records database schema and its migrations.

The schema version is SQLite's ``PRAGMA user_version``.  ``MIGRATIONS[i]``
takes a database from version ``i`` to ``i + 1``; opening a database
applies the missing steps in one transaction each, so a database written by
an older dojobber is brought up to date, and one written by a newer dojobber
is refused rather than misread.  To change the schema, append a step; never
edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaTooNewError", "migrate"]

Step = Callable[[sqlite3.Connection], None]


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run ``;``-separated statements inside the open transaction
    (``executescript`` would commit it first)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE graphs (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            root TEXT NOT NULL,
            data TEXT NOT NULL              -- {"names": [...], "deps": [[i, ...]]}
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            root TEXT NOT NULL,
            target TEXT NOT NULL,
            graph_id INTEGER REFERENCES graphs(id),
            script TEXT,
            argv TEXT,                      -- JSON list, secrets masked
            args TEXT,                      -- JSON {"args": [...], "kwargs": {...}}
            host TEXT NOT NULL,
            user TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_start INTEGER,              -- tells the writer from a reused pid
            no_act INTEGER NOT NULL DEFAULT 0,
            workers INTEGER NOT NULL DEFAULT 1,
            started REAL NOT NULL,
            finished REAL,
            outcome TEXT NOT NULL,          -- running, or a RunOutcome value (older: failed)
            jobs INTEGER NOT NULL DEFAULT 0,
            ok INTEGER, changed INTEGER, failed INTEGER, blocked INTEGER
        );
        CREATE INDEX runs_by_root ON runs (root, id);
        CREATE INDEX runs_running ON runs (outcome) WHERE outcome = 'running';
        CREATE TABLE jobs (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,           -- position in the run, dependencies first
            name TEXT NOT NULL,
            status TEXT NOT NULL,           -- a JobStatus value (not pending)
            tries INTEGER NOT NULL,
            started REAL,
            duration REAL,
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE job_details (          -- only for jobs with more to say
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            result TEXT,                    -- repr of the Check result
            exception TEXT,
            traceback TEXT,
            phases TEXT,                    -- JSON [[phase, attempt, start, secs, ok, error]]
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE logs (
            seq INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            job TEXT NOT NULL,
            phase TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            created REAL NOT NULL,
            level INTEGER NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX logs_by_job ON logs (run_id, job);
        """
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Converge sessions: the rounds of one ``DoJobber.converge()`` share a
    session id and are numbered (both NULL for a lone run)."""
    _script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN session TEXT;
        ALTER TABLE runs ADD COLUMN round INTEGER;
        CREATE INDEX runs_by_session ON runs (session, id) WHERE session IS NOT NULL
        """,
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Check mode: what a would-run job's ``Plan()`` said it would do."""
    _script(conn, "ALTER TABLE job_details ADD COLUMN plan TEXT")


#: ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Step, ...] = (_v1, _v2, _v3)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(sqlite3.DatabaseError):
    """The database was written by a newer dojobber."""


def migrate(conn: sqlite3.Connection, steps: Sequence[Step]) -> int:
    """Bring ``conn`` (autocommit mode) to version ``len(steps)``; return it.

    Each step runs in its own ``BEGIN IMMEDIATE`` transaction that re-reads
    the version first, so two processes opening a new database at once do
    not both apply a step.
    """
    target = len(steps)
    while True:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > target:
            raise SchemaTooNewError(
                f"schema version {version} is newer than this dojobber knows ({target});"
                " upgrade dojobber to read it"
            )
        if version == target:
            return target
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < target:
                steps[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
