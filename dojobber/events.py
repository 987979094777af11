"""Listeners: how the engine tells the world what happens.

The engine never prints or writes records itself; it calls the methods of
the :class:`Listener` objects given to ``configure(listeners=[...])`` (and of
the bundled ones: console output, records, progress).  Subclass
:class:`Listener` and override what you need; every method is a no-op by
default.  A listener that raises is reported once on the ``dojobber`` logger
and detached; the run goes on.

Calls are serialised: with ``workers > 1`` they come from several threads,
but never two at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .converge import ConvergeResult
    from .graph import JobGraph
    from .results import JobResult, RunResult

__all__ = [
    "BATCH_SECONDS", "BATCH_SIZE", "Batch", "EventBus", "Listener", "RoundInfo", "RunInfo",
]

#: Most results in one :meth:`Listener.jobs_finished` call.
BATCH_SIZE = 256
#: Longest a finished job waits in a batch (while the engine keeps going).
BATCH_SECONDS = 0.5

log = logging.getLogger("dojobber")

@dataclass(frozen=True)
class RunInfo:
    """What a run is about, given to :meth:`Listener.run_started`."""

    root: str
    target: str
    #: Names of the jobs this run may try, dependencies first.
    jobs: tuple[str, ...]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    no_act: bool = False
    workers: int = 1
    started: float = 0.0
    #: The configured graph, when the engine passes it (records store its
    #: edges so that a stored run can be drawn).
    graph: JobGraph | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RoundInfo:
    """One round of :meth:`DoJobber.converge`, given to the round events."""

    #: Id of the converge session (the same for all its rounds; the records
    #: store it with each round's run).
    session: str
    #: 1-based.
    number: int
    #: The session's limits: most rounds (None: no limit) and the deadline
    #: (wall clock, seconds since the epoch; None: none).
    max_rounds: int | None = None
    deadline: float | None = None
    #: When the session started (wall clock).
    session_started: float = 0.0


class Listener:
    """Base class for run listeners; override any of these methods.

    Only overridden methods are called: the bus skips the no-op ones, so a
    listener that wants one event costs nothing for the others.
    """

    #: Lowest level of log records this listener wants in :meth:`log`.
    #: ``None`` takes what the logging configuration lets through (the root
    #: logger is WARNING by default).  A lower level makes the run lower the
    #: root logger's level while it lasts, with a filter on the existing
    #: handlers so that console output does not change (see
    #: :class:`dojobber._context.LogRouter`).
    log_level: int | None = None

    def run_started(self, run: RunInfo) -> None:
        """A ``checknrun()`` begins."""

    def job_started(self, job: str, attempt: int) -> None:
        """Attempt number ``attempt`` (1-based) of ``job`` begins."""

    def phase_started(self, job: str, phase: str, attempt: int) -> None:
        """A phase (``init``, ``check``, ``run``, ``recheck``) begins."""

    def phase_finished(
        self,
        job: str,
        phase: str,
        attempt: int,
        ok: bool,
        duration: float,
        error: BaseException | None,
    ) -> None:
        """A phase ended; ``error`` is what it raised, if anything."""

    def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
        """A running job reported progress (see :func:`dojobber.report_progress`)."""

    def attempt_finished(self, job: str, attempt: int, ok: bool, will_retry: bool) -> None:
        """An attempt ended; ``will_retry`` says whether another follows."""

    def job_finished(self, result: JobResult) -> None:
        """A job's status is final for this run (passed, failed, blocked)."""

    def jobs_finished(self, results: list[JobResult]) -> None:
        """Several jobs' statuses are final: :meth:`job_finished`, batched.

        Override this instead of :meth:`job_finished` when you handle jobs
        in bulk (the records listener writes them to SQLite): it costs a
        list append per job instead of a call.  Batches hold up to
        :data:`BATCH_SIZE` results, in the order the jobs finished.  The
        engine sends what it holds when a job finishes
        :data:`BATCH_SECONDS` or more after the previous batch was sent (or
        the run started), before it waits (out a retry's delay, or for a
        worker), and before :meth:`run_finished`.  The list is yours to
        keep.
        """

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        """A log record was emitted while ``job`` ran ``phase``."""

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        """One instance's ``Cleanup()`` ran."""

    def run_finished(self, result: RunResult) -> None:
        """The run ended (also after Ctrl-C, before the exception goes on)."""

    # Converge sessions (DoJobber.converge): each round is a whole run,
    # between round_started and round_finished.
    def round_started(self, round: RoundInfo) -> None:
        """A round of a converge session begins (its run_started follows)."""

    def round_finished(self, round: RoundInfo, result: RunResult) -> None:
        """A round ended; ``result`` is its run's result."""

    def round_waiting(self, round: RoundInfo, seconds: float) -> None:
        """The session waits ``seconds`` before starting ``round``."""

    def converge_finished(self, result: ConvergeResult) -> None:
        """The converge session ended (also after Ctrl-C)."""


class EventBus:
    """Fans events out to listeners, one call at a time, isolating failures.

    ``bool(bus)`` is False when there is nobody to tell, so the engine can
    skip building events at all.
    """

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._lock = threading.RLock()
        #: Per event, ``(listener, bound method)`` of the listeners that
        #: override it; the others are skipped without a call.
        self._targets: dict[str, tuple[tuple[Listener, Any], ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._listeners)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            self._targets.clear()

    def wants(self, event: str) -> bool:
        """Whether any listener overrides ``event`` (others ignore it)."""
        targets = self._targets.get(event)
        if targets is None:
            targets = self._targets_of(event)
        return bool(targets)

    def _targets_of(self, event: str) -> tuple[tuple[Listener, Any], ...]:
        with self._lock:
            base = getattr(Listener, event, None)
            targets = tuple(
                (listener, getattr(listener, event))
                for listener in self._listeners
                if event in getattr(listener, "__dict__", ())
                or getattr(type(listener), event, None) is not base
            )
            self._targets[event] = targets
            return targets

    def emit(self, event: str, *args: Any) -> None:
        """Call ``event`` on every listener with ``args`` (the arguments of
        the :class:`Listener` method of that name).

        Listeners that do not override ``event`` (it is a no-op on
        :class:`Listener`) are skipped without a call.
        """
        targets = self._targets.get(event)
        if targets is None:
            targets = self._targets_of(event)
        if targets:
            self._deliver(event, args)

    def _deliver(self, event: str, args: tuple[Any, ...]) -> None:
        """Call ``event`` with ``args`` on its listeners, one call at a time.

        The targets are read under the lock, so a listener detached by
        another thread meanwhile is not called.
        """
        acquire, release = self._lock.acquire, self._lock.release
        acquire()  # (bound methods: cheaper than "with" per job)
        try:
            targets = self._targets.get(event)
            if targets is None:
                targets = self._targets_of(event)
            for listener, method in targets:
                try:
                    method(*args)
                except Exception:
                    self._detach(listener, event)
        finally:
            release()

    def caller(self, event: str) -> Callable[..., None] | None:
        """A function that sends ``event`` with its arguments, or None when
        no listener overrides it.

        What :meth:`emit` does, for an event the engine sends once or more
        per job, without building an argument tuple to trim first.
        Listeners added or detached later are seen, as with :meth:`emit`.
        """
        if not self.wants(event):
            return None
        deliver = self._deliver

        def call(*args: Any) -> None:
            deliver(event, args)

        return call

    def batch(self, event: str, size: int = BATCH_SIZE,
              seconds: float = BATCH_SECONDS) -> Batch | None:
        """A :class:`Batch` that sends ``event`` with lists of items, or
        None when no listener overrides it."""
        call = self.caller(event)
        return None if call is None else Batch(call, size, seconds)

    def _detach(self, listener: Listener, event: str) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        self._targets.clear()
        log.warning(
            "listener %r raised in %s(); it is detached for the rest of the run",
            listener,
            event,
            exc_info=True,
        )


class Batch:
    """Items collected for one event that takes a list (see
    :meth:`Listener.jobs_finished`): :meth:`add` sends them when ``size``
    are held or when an item comes ``seconds`` or more after the batch was
    made or last sent (so a slow stream of items is not held for long, and
    a fast one costs no clock reading per item); :meth:`send` at once.

    While :meth:`ticking`, a timer thread also sends what has been held
    ``seconds`` or more, so that items are not held while the engine waits
    on a long job.  The engine's thread appends to :attr:`items` without a
    lock (one ``list.append``, atomic); every send takes the batch's lock,
    and the timer takes the items it sends off the front of the same list,
    so an item appended meanwhile is neither lost nor sent twice, and items
    are sent in the order they came.
    """

    __slots__ = ("_call", "_lock", "due", "items", "seconds", "size")

    def __init__(self, call: Callable[[list[Any]], None], size: int, seconds: float) -> None:
        self._call = call
        self._lock = threading.Lock()
        self.size = size
        self.seconds = seconds
        self.items: list[Any] = []
        #: perf_counter reading from which :meth:`add` sends: ``seconds``
        #: after the batch was started or last sent.
        self.due = time.perf_counter() + seconds

    def add(self, item: Any, now: float) -> None:
        """Hold ``item``, which came at ``now`` (a :func:`time.perf_counter`
        reading the caller has anyway); send all when due.  (The engine's
        per-job path does the same inline.)"""
        items = self.items
        items.append(item)
        if len(items) >= self.size or now >= self.due:
            self.send()

    def send(self) -> None:
        """Send what is held now (nothing when empty)."""
        with self._lock:
            self.due = time.perf_counter() + self.seconds
            items = self.items
            if items:
                self.items = []
                self._call(items)

    def _send_due(self) -> None:
        """The timer's send: what is held, if the last send is ``seconds`` old."""
        with self._lock:
            now = time.perf_counter()
            items = self.items
            if not items or now < self.due:
                return
            self.due = now + self.seconds
            count = len(items)
            held = items[:count]
            del items[:count]  # (the engine may append meanwhile: at the end)
            self._call(held)

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Send held items from a timer thread too while the block runs."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.seconds / 2):
                self._send_due()

        timer = threading.Thread(target=tick, name="dojobber-batch-timer", daemon=True)
        timer.start()
        try:
            yield
        finally:
            stop.set()
            timer.join()
