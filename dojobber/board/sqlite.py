"""The SQLite board: one file, any number of worker processes on one host
(WAL, and ``BEGIN IMMEDIATE`` claims, so two workers never take the same
request).  A new board file is created 0600 and marked with ``PRAGMA
application_id``; a file that is not a board (another program's database,
run records) is refused before anything in it is changed."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .._paths import user_state_file
from .._sqlite_files import BOARD_ID, ForeignDatabaseError, check_ours, create_private, mark_ours
from .base import (
    COLUMNS,
    LOST_CANCELLED,
    SETTLE_LOST,
    Board,
    BoardError,
    NewRequest,
    Posted,
    Request,
    UnknownRequestError,
    check_states,
    finish_state,
    request_of,
)

__all__ = ["SQLiteBoard", "default_path"]

SCHEMA_VERSION = 2


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    args TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    dedupe TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'waiting',
    posted REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    retry_delay REAL NOT NULL DEFAULT 60,
    not_before REAL NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at REAL,
    lease_until REAL,
    finished REAL,
    outcome TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    runs TEXT NOT NULL DEFAULT '[]',
    retry_backoff TEXT                  -- JSON [initial, factor, max, jitter] or NULL
);
CREATE INDEX IF NOT EXISTS requests_due ON requests (state, priority, posted);
CREATE INDEX IF NOT EXISTS requests_dedupe ON requests (dedupe, state);
"""


class SQLiteBoard(Board):
    """The board in one SQLite file; safe for several processes on a host.

    Limits: one host (SQLite's locking needs a local file system, not NFS);
    claims are serialised, so thousands of claims a second are out of reach;
    every worker polls (``poll`` seconds) instead of being woken.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout = timeout
        try:
            create_private(str(self.path))
            unmarked = self._check_ours()
            with self._connect(immediate=True) as db:
                if unmarked:
                    mark_ours(db, BOARD_ID)
                db.executescript(_SCHEMA + "BEGIN IMMEDIATE;")  # it commits first
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                version = int(row[0]) if row is not None else SCHEMA_VERSION
                if version == 1:  # version 2 added the retry policy
                    db.execute("ALTER TABLE requests ADD COLUMN retry_backoff TEXT")
                    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
                    version = 2
        except ForeignDatabaseError as err:
            raise BoardError(
                f"{self.path} is not a board: {err}; give the path of a board file or "
                "of a new file (--board or DOJOBBER_BOARD)"
            ) from None
        except (sqlite3.Error, OSError, BoardError) as err:
            raise BoardError(
                f"cannot use {self.path} as a board: {err}; give a writable path to a "
                "board file (--board or DOJOBBER_BOARD)"
            ) from err
        if version > SCHEMA_VERSION:
            raise BoardError(
                f"board {self.path} has schema {version}, newer than this dojobber "
                f"understands ({SCHEMA_VERSION}); upgrade dojobber"
            )

    def _check_ours(self) -> bool:
        """Refuse a file that is not a board before anything in it changes
        (:class:`ForeignDatabaseError`); True when it is to be marked (a new
        one, or one from before the mark)."""
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            return check_ours(db, BOARD_ID, ("meta", "requests"))
        finally:
            db.close()

    @contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise BoardError(f"board {self.path}: {err}") from err
        finally:
            db.close()

    # ------------------------------------------------------------------
    def _post(self, new: NewRequest) -> Posted:
        with self._connect(immediate=True) as db:
            row = db.execute(
                "SELECT id FROM requests WHERE dedupe=? AND state='waiting'", (new.dedupe,)
            ).fetchone()
            if row is not None:
                return Posted(int(row[0]), True)
            cur = db.execute(
                "INSERT INTO requests (target, args, kwargs, dedupe, priority, posted,"
                " max_attempts, retry_delay, retry_backoff) VALUES (?,?,?,?,?,?,?,?,?)",
                (new.target, new.args, new.kwargs, new.dedupe, new.priority, time.time(),
                 new.max_attempts, new.retry_delay, new.retry_backoff),
            )
            return Posted(int(cur.lastrowid or 0), False)

    def claim(self, worker: str, lease: float) -> Request | None:
        now = time.time()
        with self._connect(immediate=True) as db:
            self._settle_lost(db, now)
            row = db.execute(
                "SELECT id FROM requests WHERE (state='waiting' AND not_before<=?)"
                " OR (state='claimed' AND lease_until<?)"
                " ORDER BY priority DESC, posted, id LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE requests SET state='claimed', claimed_by=?, claimed_at=?,"
                " lease_until=?, attempts=attempts+1 WHERE id=?",
                (worker, now, now + lease, row[0]),
            )
            return self._get(db, int(row[0]))

    @staticmethod
    def _settle_lost(db: sqlite3.Connection, now: float) -> None:
        for statement in SETTLE_LOST:
            db.execute(statement.format(table="requests", now=":now"), {"now": now})

    def release(self, request_id: int, worker: str) -> bool:
        with self._connect(immediate=True) as db:
            cur = db.execute(
                "UPDATE requests SET state='waiting', claimed_by=NULL, claimed_at=NULL,"
                " lease_until=NULL, attempts=MAX(attempts-1, 0)"
                " WHERE id=? AND state='claimed' AND claimed_by=?",
                (request_id, worker),
            )
            return cur.rowcount == 1

    def heartbeat(self, request_id: int, worker: str, lease: float) -> str:
        with self._connect(immediate=True) as db:
            row = db.execute(
                "SELECT state, claimed_by, cancel_requested FROM requests WHERE id=?",
                (request_id,),
            ).fetchone()
            if row is None or row[0] != "claimed" or row[1] != worker:
                return "lost"
            db.execute("UPDATE requests SET lease_until=? WHERE id=?",
                       (time.time() + lease, request_id))
            return "cancel" if row[2] else "ok"

    def finish(self, request_id: int, worker: str, success: bool, outcome: str,
               run_id: str | None = None) -> str | None:
        now = time.time()
        with self._connect(immediate=True) as db:
            req = self._get(db, request_id)
            if req.state != "claimed" or req.claimed_by != worker:
                return None
            runs = [*req.runs, run_id] if run_id else list(req.runs)
            state = finish_state(req.cancel_requested, success, req.attempts, req.max_attempts)
            db.execute(
                "UPDATE requests SET state=?, outcome=?, runs=?, finished=?, lease_until=NULL,"
                " not_before=? WHERE id=?",
                (state, outcome, json.dumps(runs), None if state == "waiting" else now,
                 now + req.retry_wait() if state == "waiting" else 0, request_id),
            )
            return state

    def cancel(self, request_id: int) -> str:
        with self._connect(immediate=True) as db:
            req = self._get(db, request_id)
            lost = req.state == "claimed" and (req.lease_until or 0) < time.time()
            if req.state == "waiting" or lost:  # nobody runs it: cancelled now
                db.execute(
                    "UPDATE requests SET state='cancelled', finished=?, lease_until=NULL,"
                    " outcome=? WHERE id=?",
                    (time.time(), LOST_CANCELLED if lost else None,
                     request_id))
                return "cancelled"
            if req.state == "claimed":
                db.execute("UPDATE requests SET cancel_requested=1 WHERE id=?", (request_id,))
            return req.state

    def get(self, request_id: int) -> Request:
        with self._connect() as db:
            return self._get(db, request_id)

    def requests(self, states: Sequence[str] | None = None, limit: int = 100) -> list[Request]:
        check_states(states)
        where, params = "", tuple[str, ...]()
        if states:
            where = f"WHERE state IN ({','.join('?' * len(states))})"
            params = tuple(states)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM requests {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [request_of(row) for row in rows]

    @staticmethod
    def _get(db: sqlite3.Connection, request_id: int) -> Request:
        row = db.execute(f"SELECT {COLUMNS} FROM requests WHERE id=?", (request_id,)).fetchone()
        if row is None:
            raise UnknownRequestError(request_id)
        return request_of(row)


def default_path() -> Path:
    """``$DOJOBBER_BOARD``, else ``$XDG_STATE_HOME/dojobber/board.sqlite3``
    (``~/.local/state/dojobber/board.sqlite3``)."""
    return Path(user_state_file("DOJOBBER_BOARD", "board.sqlite3"))

