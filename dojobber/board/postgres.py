"""The PostgreSQL board: workers on many hosts share one server.

- Claims are ``SELECT ... FOR UPDATE SKIP LOCKED`` inside one ``UPDATE``:
  two workers never take one request, and none waits on another's row lock.
- Every time on the board (posted, leases, retry delays) is the server's
  ``now()``; a worker's own clock never decides whether a lease ran out.
- Posting a request (or putting a failed one back for a retry) sends a
  ``NOTIFY``; an idle worker ``LISTEN``s and wakes at once, or when the next
  request falls due, or after its poll interval as a fallback.
- A lost connection (server restart, network cut) is reconnected and the
  operation done again, for up to ``retry_for`` seconds (see
  :class:`~dojobber._postgres.PostgresLink`).

Needs the ``postgres`` extra (psycopg 3).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._postgres import NotOursError, PostgresLink, redact_url
from ..backoff import Backoff
from .base import (
    STATES,
    Board,
    BoardError,
    NewRequest,
    Posted,
    Request,
    UnknownRequestError,
    backoff_of,
    retry_wait,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresBoard"]

#: NOTIFY channel of the board.
CHANNEL = "dojobber_board"

_NOW = "extract(epoch FROM now())"

#: ``MIGRATIONS[i]`` upgrades the board's tables from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE board_requests (
        id bigserial PRIMARY KEY,
        target text NOT NULL,
        args text NOT NULL,                 -- JSON list
        kwargs text NOT NULL,               -- JSON object, keys sorted
        dedupe text NOT NULL,
        priority integer NOT NULL DEFAULT 0,
        state text NOT NULL DEFAULT 'waiting',
        posted double precision NOT NULL DEFAULT {_NOW},
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 1,
        retry_delay double precision NOT NULL DEFAULT 60,
        not_before double precision NOT NULL DEFAULT 0,
        claimed_by text,
        claimed_at double precision,
        lease_until double precision,
        finished double precision,
        outcome text,
        cancel_requested boolean NOT NULL DEFAULT false,
        runs text NOT NULL DEFAULT '[]'     -- JSON list of run ids
    );
    CREATE INDEX board_requests_open ON board_requests (priority DESC, posted, id)
        WHERE state IN ('waiting', 'claimed');
    CREATE INDEX board_requests_dedupe ON board_requests (dedupe) WHERE state = 'waiting';
    """,
    # 2: the retry policy (JSON [initial, factor, max, jitter]) of a request
    # whose waits between attempts grow.
    "ALTER TABLE board_requests ADD COLUMN retry_backoff text",
)

_COLUMNS = (
    "id, target, args, kwargs, priority, state, posted, attempts, max_attempts, retry_delay,"
    " not_before, claimed_by, claimed_at, lease_until, finished, outcome, cancel_requested, runs,"
    " retry_backoff"
)


class PostgresBoard(Board):
    """The board in a PostgreSQL database at ``url``
    (``postgresql://user:password@host:port/database``).

    ``retry_for``: seconds an operation keeps reconnecting when the
    connection is lost before it raises :class:`BoardError`.
    """

    def __init__(self, url: str, *, retry_for: float = 60.0,
                 connect_timeout: float = 10.0) -> None:
        self.url = url
        self.where = redact_url(url)
        self._link = PostgresLink(url, self._error, retry_for=retry_for,
                                  connect_timeout=connect_timeout)
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise BoardError(
                f"board {self.where} needs psycopg: pip install 'dojobber[postgres]'") from err
        try:
            self._link.ensure_schema("board", MIGRATIONS, ["board_requests"])
        except NotOursError as err:
            raise BoardError(f"cannot use {self.where} as a board: {err}") from None

    def __repr__(self) -> str:
        return f"PostgresBoard({self.where!r})"

    def _error(self, message: str) -> BoardError:
        return BoardError(f"board {message}")

    def close(self) -> None:
        self._link.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    # ------------------------------------------------------------------
    def post(
        self,
        target: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        max_attempts: int = 1,
        retry_delay: float | Backoff = 60.0,
    ) -> Posted:
        new = NewRequest.of(target, args, kwargs, priority, max_attempts, retry_delay)

        def body(conn: psycopg.Connection[Any]) -> Posted:
            # Posts of the same request queue behind each other (not others).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (new.dedupe,))
            row = conn.execute(
                "SELECT id FROM board_requests WHERE dedupe = %s AND state = 'waiting'",
                (new.dedupe,)).fetchone()
            if row is not None:
                return Posted(int(row[0]), True)
            row = conn.execute(
                "INSERT INTO board_requests (target, args, kwargs, dedupe, priority,"
                " max_attempts, retry_delay, retry_backoff)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (new.target, new.args, new.kwargs, new.dedupe, new.priority, new.max_attempts,
                 new.retry_delay, new.retry_backoff),
            ).fetchone()
            conn.execute(f"NOTIFY {CHANNEL}")
            assert row is not None
            return Posted(int(row[0]), False)

        return self._link.run(body)

    def claim(self, worker: str, lease: float) -> Request | None:
        def body(conn: psycopg.Connection[Any]) -> Request | None:
            # Claims whose worker is gone (lease expired): a cancel pending
            # ends them cancelled, no attempts left ends them failed (every
            # claim counts); the others are claimed again below.
            conn.execute(
                f"UPDATE board_requests SET state = 'cancelled', finished = {_NOW},"
                " lease_until = NULL, outcome = 'cancelled (its worker was lost)'"
                f" WHERE state = 'claimed' AND lease_until < {_NOW} AND cancel_requested")
            conn.execute(
                f"UPDATE board_requests SET state = 'failed', finished = {_NOW},"
                " lease_until = NULL, outcome = 'its worker was lost (no heartbeat within the"
                " lease) on attempt ' || attempts || ' of ' || max_attempts"
                f" WHERE state = 'claimed' AND lease_until < {_NOW}"
                " AND attempts >= max_attempts")
            row = conn.execute(
                f"UPDATE board_requests SET state = 'claimed', claimed_by = %s,"
                f" claimed_at = {_NOW}, lease_until = {_NOW} + %s, attempts = attempts + 1"
                f" WHERE id = (SELECT id FROM board_requests"
                f"  WHERE (state = 'waiting' AND not_before <= {_NOW})"
                f"     OR (state = 'claimed' AND lease_until < {_NOW})"
                f"  ORDER BY priority DESC, posted, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_COLUMNS}",
                (worker, lease),
            ).fetchone()
            return None if row is None else _request(row)

        return self._link.run(body)

    def release(self, request_id: int, worker: str) -> bool:
        """Hand a claim back untouched (``waiting`` again, not counted as an
        attempt): the worker found a fault of its own before running it.
        Returns whether the claim was this worker's."""
        def body(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                "UPDATE board_requests SET state = 'waiting', claimed_by = NULL,"
                " claimed_at = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0)"
                " WHERE id = %s AND state = 'claimed' AND claimed_by = %s RETURNING id",
                (request_id, worker)).fetchone()
            if row is not None:
                conn.execute(f"NOTIFY {CHANNEL}")
            return row is not None

        return self._link.run(body)

    def heartbeat(self, request_id: int, worker: str, lease: float) -> str:
        def body(conn: psycopg.Connection[Any]) -> str:
            row = conn.execute(
                f"UPDATE board_requests SET lease_until = {_NOW} + %s"
                " WHERE id = %s AND state = 'claimed' AND claimed_by = %s"
                " RETURNING cancel_requested",
                (lease, request_id, worker),
            ).fetchone()
            if row is None:
                return "lost"
            return "cancel" if row[0] else "ok"

        return self._link.run(body)

    def finish(self, request_id: int, worker: str, success: bool, outcome: str,
               run_id: str | None = None) -> str | None:
        def body(conn: psycopg.Connection[Any]) -> str | None:
            row = conn.execute(
                "SELECT state, claimed_by, cancel_requested, attempts, max_attempts, runs,"
                " retry_delay, retry_backoff FROM board_requests WHERE id = %s FOR UPDATE",
                (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            (state, claimed_by, cancel_requested, attempts, max_attempts, runs, delay,
             policy) = row
            wait = retry_wait(delay, backoff_of(policy), attempts)
            if state != "claimed" or claimed_by != worker:
                return None
            if cancel_requested:
                state = "cancelled"
            elif success:
                state = "done"
            elif attempts < max_attempts:
                state = "waiting"
            else:
                state = "failed"
            runs = [*json.loads(runs), run_id] if run_id else json.loads(runs)
            waiting = state == "waiting"
            conn.execute(
                f"UPDATE board_requests SET state = %s, outcome = %s, runs = %s,"
                f" lease_until = NULL,"
                f" finished = CASE WHEN %s THEN NULL ELSE {_NOW} END,"
                f" not_before = CASE WHEN %s THEN {_NOW} + %s ELSE 0 END"
                f" WHERE id = %s",
                (state, outcome, json.dumps(runs), waiting, waiting, wait, request_id),
            )
            if waiting:
                conn.execute(f"NOTIFY {CHANNEL}")  # idle workers learn its due time
            return str(state)

        return self._link.run(body)

    def cancel(self, request_id: int) -> str:
        def body(conn: psycopg.Connection[Any]) -> str:
            row = conn.execute(
                f"SELECT state, lease_until < {_NOW} FROM board_requests WHERE id = %s"
                " FOR UPDATE", (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            lost = row[0] == "claimed" and bool(row[1])
            if row[0] == "waiting" or lost:  # nobody runs it: cancelled now
                conn.execute(
                    f"UPDATE board_requests SET state = 'cancelled', finished = {_NOW},"
                    " lease_until = NULL, outcome = %s WHERE id = %s",
                    ("cancelled (its worker was lost)" if lost else None, request_id))
                return "cancelled"
            if row[0] == "claimed":
                conn.execute("UPDATE board_requests SET cancel_requested = true WHERE id = %s",
                             (request_id,))
            return str(row[0])

        return self._link.run(body)

    def get(self, request_id: int) -> Request:
        def body(conn: psycopg.Connection[Any]) -> Request:
            row = conn.execute(f"SELECT {_COLUMNS} FROM board_requests WHERE id = %s",
                               (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            return _request(row)

        return self._link.run(body)

    def requests(self, states: Sequence[str] | None = None, limit: int = 100) -> list[Request]:
        for state in states or ():
            if state not in STATES:
                raise BoardError(f"unknown state {state!r}; states are {', '.join(STATES)}")

        def body(conn: psycopg.Connection[Any]) -> list[Request]:
            if states:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM board_requests WHERE state = ANY(%s)"
                    " ORDER BY id DESC LIMIT %s", (list(states), limit)).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM board_requests ORDER BY id DESC LIMIT %s",
                    (limit,)).fetchall()
            return [_request(row) for row in rows]

        return self._link.run(body)

    # ------------------------------------------------------------------
    def next_due(self) -> float | None:
        """Seconds until the next waiting request falls due or the next
        claim's lease runs out (by the server's clock); None if neither."""
        def body(conn: psycopg.Connection[Any]) -> float | None:
            row = conn.execute(
                f"SELECT min(CASE WHEN state = 'waiting' THEN not_before ELSE lease_until END)"
                f" - {_NOW} FROM board_requests WHERE state IN ('waiting', 'claimed')"
            ).fetchone()
            return None if row is None or row[0] is None else max(0.0, float(row[0]))

        return self._link.run(body)

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Until a request is posted (``NOTIFY``), the next one falls due,
        ``timeout`` passes or ``stop`` is set.  The first call only starts
        listening and returns, so that the caller looks again: nothing
        posted before the ``LISTEN`` is missed."""
        import psycopg

        with self._listen_lock:
            if self._listener is None or self._listener.closed:
                try:
                    self._listener = self._link.connect(autocommit=True)
                    self._listener.execute(f"LISTEN {CHANNEL}")
                except Exception:  # server away: the caller's next call retries
                    self._listener = None
                    _sleep(min(timeout, 1.0), stop)
                return
            listener = self._listener
        try:
            due = self.next_due()
        except BoardError:
            due = None
        end = time.monotonic() + (timeout if due is None else min(timeout, due))
        try:
            while not (stop is not None and stop.is_set()):
                left = end - time.monotonic()
                if left <= 0:
                    return
                woken = False
                for _ in listener.notifies(timeout=min(left, 0.25), stop_after=1):
                    woken = True
                if woken:  # drain what else arrived, then let the caller claim
                    for _ in listener.notifies(timeout=0):
                        pass
                    return
        except psycopg.Error:
            with self._listen_lock:
                listener.close()
                self._listener = None


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def _request(row: Sequence[Any]) -> Request:
    (rid, target, args, kwargs, priority, state, posted, attempts, max_attempts,
     retry_delay, not_before, claimed_by, claimed_at, lease_until, finished, outcome,
     cancel_requested, runs, retry_backoff) = row
    return Request(
        id=int(rid), target=target, args=tuple(json.loads(args)), kwargs=json.loads(kwargs),
        priority=priority, state=state, posted=posted, attempts=attempts,
        max_attempts=max_attempts, retry_delay=retry_delay, not_before=not_before,
        claimed_by=claimed_by, claimed_at=claimed_at, lease_until=lease_until,
        finished=finished, outcome=outcome, cancel_requested=bool(cancel_requested),
        runs=tuple(json.loads(runs)),
        retry_backoff=backoff_of(retry_backoff),
    )
