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

from .._postgres import Listening, NotOursError, PostgresLink, redact_url
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
        self._listening = Listening(self._link, CHANNEL)
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise BoardError(
                f"board {self.where} needs psycopg: pip install 'dojobber[postgres]'") from err
        try:
            self._link.ensure_schema("board", MIGRATIONS, ["board_requests"])
        except NotOursError as err:
            self.close()
            raise BoardError(f"cannot use {self.where} as a board: {err}") from None
        except BaseException:  # (a newer schema, a server gone): nothing left open
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresBoard({self.where!r})"

    def _error(self, message: str) -> BoardError:
        return BoardError(f"board {message}")

    def close(self) -> None:
        self._link.close()
        self._listening.close()

    # ------------------------------------------------------------------
    def _post(self, new: NewRequest) -> Posted:
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
            for statement in SETTLE_LOST:  # claims whose worker is gone
                conn.execute(statement.format(table="board_requests", now=_NOW))
            row = conn.execute(
                f"UPDATE board_requests SET state = 'claimed', claimed_by = %s,"
                f" claimed_at = {_NOW}, lease_until = {_NOW} + %s, attempts = attempts + 1"
                f" WHERE id = (SELECT id FROM board_requests"
                f"  WHERE (state = 'waiting' AND not_before <= {_NOW})"
                f"     OR (state = 'claimed' AND lease_until < {_NOW})"
                f"  ORDER BY priority DESC, posted, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {COLUMNS}",
                (worker, lease),
            ).fetchone()
            return None if row is None else request_of(row)

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
            row = conn.execute(f"SELECT {COLUMNS} FROM board_requests WHERE id = %s"
                               " FOR UPDATE", (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            req = request_of(row)
            if req.state != "claimed" or req.claimed_by != worker:
                return None
            state = finish_state(req.cancel_requested, success, req.attempts, req.max_attempts)
            runs = [*req.runs, run_id] if run_id else list(req.runs)
            wait = req.retry_wait()
            waiting = state == "waiting"
            conn.execute(
                f"UPDATE board_requests SET state = %s, outcome = %s, runs = %s,"
                f" lease_until = NULL,"
                f" finished = CASE WHEN %s THEN NULL ELSE {_NOW} END,"
                f" not_before = CASE WHEN %s THEN {_NOW} + %s ELSE 0 END"
                f" WHERE id = %s",
                # (PostgreSQL text cannot hold NUL, which an error's text can.)
                (state, outcome.replace("\0", "\\x00"), json.dumps(runs), waiting, waiting,
                 wait, request_id),
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
                    (LOST_CANCELLED if lost else None, request_id))
                return "cancelled"
            if row[0] == "claimed":
                conn.execute("UPDATE board_requests SET cancel_requested = true WHERE id = %s",
                             (request_id,))
            return str(row[0])

        return self._link.run(body)

    def get(self, request_id: int) -> Request:
        def body(conn: psycopg.Connection[Any]) -> Request:
            row = conn.execute(f"SELECT {COLUMNS} FROM board_requests WHERE id = %s",
                               (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            return request_of(row)

        return self._link.run(body)

    def requests(self, states: Sequence[str] | None = None, limit: int = 100) -> list[Request]:
        check_states(states)

        def body(conn: psycopg.Connection[Any]) -> list[Request]:
            if states:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM board_requests WHERE state = ANY(%s)"
                    " ORDER BY id DESC LIMIT %s", (list(states), limit)).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM board_requests ORDER BY id DESC LIMIT %s",
                    (limit,)).fetchall()
            return [request_of(row) for row in rows]

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
        try:
            if self._listening.heard():
                return
        except Exception:  # server away: the caller's next call retries
            _sleep(min(timeout, 1.0), stop)
            return
        try:
            due = self.next_due()
        except BoardError:
            due = None
        end = time.monotonic() + (timeout if due is None else min(timeout, due))
        while not (stop is not None and stop.is_set()):
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                if self._listening.heard(min(left, 0.25)):
                    return
            except Exception:  # listening again at the next call
                return


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)
