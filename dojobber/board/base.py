"""A run queue: post run requests, let workers claim and carry them out.

The job-board model: a request is *posted* (``waiting``), *claimed* by one
worker under a lease that its heartbeat renews (``claimed``), and *consumed*
(``done`` or ``failed``); a worker that dies stops renewing, its lease
expires, and the next worker claims the request again — safe, because every
job of a dojobber graph checks before it runs.  A failed request can be
retried automatically (``max_attempts``, ``retry_delay``: seconds or a
:class:`~dojobber.Backoff`); ``cancel`` stops
a waiting request at once and a claimed one after its current job.

Every claim is an attempt: ``max_attempts`` bounds the runs that failed and
the workers lost together (a request that kills its worker each time fails
after ``max_attempts`` claims instead of being claimed for ever).  Give
``max_attempts=2`` or more to let another worker take over a request whose
worker died.

:class:`Board` (this module) is the interface every backend implements;
:func:`dojobber.board.open_board` picks the backend from a location.  The
embedded default is :class:`~dojobber.board.sqlite.SQLiteBoard`;
:class:`~dojobber.board.postgres.PostgresBoard` serves workers on several
hosts from one PostgreSQL server (a new backend is one new module in this
package).
"""

from __future__ import annotations

import abc
import json
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backoff import Backoff
from ..errors import DojobberError
from ..loader import absolute_target

__all__ = [
    "STATES",
    "Board",
    "BoardError",
    "NewRequest",
    "Posted",
    "Request",
    "UnknownRequestError",
    "worker_name",
]

#: Every state a request can be in.
STATES = ("waiting", "claimed", "done", "failed", "cancelled")


class BoardError(DojobberError):
    """The board cannot be opened or used (path, permissions, corruption)."""


class UnknownRequestError(BoardError, KeyError):
    def __init__(self, request_id: int) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return f"no request {self.request_id} on this board; 'dojobber board' lists them"


@dataclass(frozen=True)
class Posted:
    """What :meth:`Board.post` did."""

    id: int
    #: True when an identical request was already waiting (nothing new queued).
    duplicate: bool


@dataclass(frozen=True)
class Request:
    """One run request, as the board holds it."""

    id: int
    #: What to run: ``FILE_OR_MODULE:Root`` as ``dojobber run`` takes it.
    target: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int
    state: str
    posted: float
    attempts: int
    max_attempts: int
    retry_delay: float
    not_before: float
    claimed_by: str | None
    claimed_at: float | None
    lease_until: float | None
    finished: float | None
    outcome: str | None
    cancel_requested: bool
    #: Run ids (in the records database) of the attempts, oldest first.
    runs: tuple[str, ...]
    #: When the waits between attempts grow: the policy (``retry_delay`` is
    #: then its first wait).
    retry_backoff: Backoff | None = None

    def retry_wait(self) -> float:
        """Seconds to wait before the next attempt, after ``attempts``
        failed ones (what every backend's ``finish`` uses)."""
        return retry_wait(self.retry_delay, self.retry_backoff, self.attempts)


def retry_wait(delay: float, backoff: Backoff | None, attempts: int) -> float:
    """The wait after ``attempts`` failed attempts: ``delay``, or the
    policy's ``delay(attempts)`` when the waits grow."""
    return delay if backoff is None else backoff.delay(max(1, attempts))


def backoff_json(retry_delay: float | Backoff) -> str | None:
    """How a backend stores a growing retry policy (None for plain seconds)."""
    if not isinstance(retry_delay, Backoff) or retry_delay.constant:
        return None
    p = retry_delay
    return json.dumps([p.initial, p.factor, p.max, p.jitter])


def backoff_of(text: str | None) -> Backoff | None:
    """The stored policy (see :func:`backoff_json`)."""
    return None if text is None else Backoff(*json.loads(text))


@dataclass(frozen=True)
class NewRequest:
    """A posted request checked and encoded as every backend stores it."""

    target: str
    args: str
    kwargs: str
    #: Identical waiting requests share this key (not queued twice).
    dedupe: str
    priority: int
    max_attempts: int
    retry_delay: float
    retry_backoff: str | None

    @classmethod
    def of(
        cls, target: str, args: Sequence[Any], kwargs: dict[str, Any] | None, priority: int,
        max_attempts: int, retry_delay: float | Backoff,
    ) -> NewRequest:
        """Check and encode :meth:`Board.post`'s arguments (:class:`BoardError`
        names the one at fault)."""
        if max_attempts < 1:
            raise BoardError(f"max_attempts is {max_attempts}; give 1 or more")
        backoff_text = backoff_json(retry_delay)
        if isinstance(retry_delay, Backoff):
            retry_delay = retry_delay.initial
        try:
            args_text = json.dumps(list(args))
            kwargs_text = json.dumps(kwargs or {}, sort_keys=True)
        except TypeError as err:
            raise BoardError(f"request arguments must be JSON values: {err}") from err
        target = absolute_target(target)  # as the CLI posts it: any worker finds it
        dedupe = json.dumps([target, args_text, kwargs_text])
        return cls(target, args_text, kwargs_text, dedupe, priority, max_attempts,
                   retry_delay, backoff_text)


#: A request's columns in the order :func:`request_of` reads them.
COLUMNS = (
    "id, target, args, kwargs, priority, state, posted, attempts, max_attempts, retry_delay,"
    " not_before, claimed_by, claimed_at, lease_until, finished, outcome, cancel_requested, runs,"
    " retry_backoff"
)

#: The outcome of a claim settled because its worker stopped renewing it.
LOST_CANCELLED = "cancelled (its worker was lost)"

#: Settling claims whose worker is gone (lease expired): a cancel pending
#: ends them cancelled; no attempts left ends them failed (every claim
#: counts, so a request that kills its worker is not claimed for ever); the
#: others are claimed again.  Each backend fills in ``{table}`` and its
#: clock, ``{now}``.
SETTLE_LOST = (
    "UPDATE {table} SET state = 'cancelled', finished = {now}, lease_until = NULL,"
    f" outcome = '{LOST_CANCELLED}'"
    " WHERE state = 'claimed' AND lease_until < {now} AND cancel_requested",
    "UPDATE {table} SET state = 'failed', finished = {now}, lease_until = NULL,"
    " outcome = 'its worker was lost (no heartbeat within the lease) on attempt '"
    " || attempts || ' of ' || max_attempts"
    " WHERE state = 'claimed' AND lease_until < {now} AND attempts >= max_attempts",
)


def request_of(row: Sequence[Any]) -> Request:
    """A request from a row of :data:`COLUMNS`."""
    (rid, target, args, kwargs, priority, state, posted, attempts, max_attempts,
     retry_delay, not_before, claimed_by, claimed_at, lease_until, finished, outcome,
     cancel_requested, runs, retry_backoff) = row
    return Request(
        id=int(rid), target=target, args=tuple(json.loads(args)), kwargs=json.loads(kwargs),
        priority=priority, state=state, posted=posted, attempts=attempts,
        max_attempts=max_attempts, retry_delay=retry_delay, not_before=not_before,
        claimed_by=claimed_by, claimed_at=claimed_at, lease_until=lease_until,
        finished=finished, outcome=outcome, cancel_requested=bool(cancel_requested),
        runs=tuple(json.loads(runs)), retry_backoff=backoff_of(retry_backoff),
    )


def finish_state(cancel_requested: bool, success: bool, attempts: int,
                 max_attempts: int) -> str:
    """The state a finished attempt leaves its request in."""
    if cancel_requested:
        return "cancelled"
    if success:
        return "done"
    return "waiting" if attempts < max_attempts else "failed"


def check_states(states: Sequence[str] | None) -> None:
    """Refuse a state that is not one of :data:`STATES`."""
    for state in states or ():
        if state not in STATES:
            raise BoardError(f"unknown state {state!r}; states are {', '.join(STATES)}")


def worker_name() -> str:
    """``host:pid``, how a worker is named on the board."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Board(abc.ABC):
    """What a run queue offers; see the module doc for the life of a request."""

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
        """Queue a run of ``target``; an identical waiting request is not
        queued twice (``Posted.duplicate``).  ``retry_delay``: seconds
        between attempts, or a :class:`~dojobber.Backoff` whose waits grow."""
        return self._post(NewRequest.of(target, args, kwargs, priority, max_attempts,
                                        retry_delay))

    @abc.abstractmethod
    def _post(self, new: NewRequest) -> Posted:
        """Store ``new`` unless an identical request (``new.dedupe``) waits."""

    @abc.abstractmethod
    def claim(self, worker: str, lease: float) -> Request | None:
        """Take the highest-priority, oldest request that is due (or whose
        claim expired with attempts left) for ``worker`` for ``lease``
        seconds; None if none.  Every claim counts as an attempt against
        ``max_attempts``; an expired claim with a cancel pending, or with no
        attempts left, is settled (``cancelled`` / ``failed``), not claimed."""

    @abc.abstractmethod
    def heartbeat(self, request_id: int, worker: str, lease: float) -> str:
        """Renew the lease; returns ``"ok"``, ``"cancel"`` (stop after the
        current job) or ``"lost"`` (the claim is no longer this worker's)."""

    @abc.abstractmethod
    def finish(self, request_id: int, worker: str, success: bool, outcome: str,
               run_id: str | None = None) -> str | None:
        """Record the outcome of the claimed attempt; returns the new state
        (None when the claim was not this worker's any more)."""

    def release(self, request_id: int, worker: str) -> bool:
        """Hand a claim back untouched (``waiting`` again, the claim not
        counted): the worker found a fault of its own before running it.
        Returns whether the claim was this worker's.  (This default keeps the
        claim; its lease expires.)"""
        return False

    @abc.abstractmethod
    def cancel(self, request_id: int) -> str:
        """Cancel: a waiting request (or a claimed one whose worker is lost:
        its lease expired) at once, a claimed one after its current job.
        Returns the state it is in afterwards."""

    @abc.abstractmethod
    def get(self, request_id: int) -> Request:
        """One request; :class:`UnknownRequestError` if there is none."""

    @abc.abstractmethod
    def requests(self, states: Sequence[str] | None = None, limit: int = 100) -> list[Request]:
        """Recent requests, newest first, optionally only in ``states``."""

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Wait until a request may have become due, at most ``timeout``
        seconds, returning early when ``stop`` is set.  An idle worker calls
        this between claims.  This default sleeps (polling); a backend that
        can be woken (PostgreSQL ``LISTEN``) returns as soon as a request is
        posted or falls due."""
        (stop if stop is not None else threading.Event()).wait(timeout)

    def close(self) -> None:
        """Let go of connections (a board opens them again when used)."""
        return None


