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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import JobResult, RunResult

__all__ = ["EventBus", "Listener", "RunInfo"]

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


class Listener:
    """Base class for run listeners; override any of these methods."""

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

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        """A log record was emitted while ``job`` ran ``phase``."""

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        """One instance's ``Cleanup()`` ran."""

    def run_finished(self, result: RunResult) -> None:
        """The run ended (also after Ctrl-C, before the exception goes on)."""


class EventBus:
    """Fans events out to listeners, one call at a time, isolating failures.

    ``bool(bus)`` is False when there is nobody to tell, so the engine can
    skip building events at all.
    """

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._lock = threading.RLock()

    def __bool__(self) -> bool:
        return bool(self._listeners)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, event: str, *args: Any) -> None:
        """Call ``event`` on every listener with ``args``."""
        if not self._listeners:
            return
        with self._lock:
            for listener in list(self._listeners):
                try:
                    getattr(listener, event)(*args)
                except Exception:
                    self._listeners.remove(listener)
                    log.warning(
                        "listener %r raised in %s(); it is detached for the rest "
                        "of the run",
                        listener,
                        event,
                        exc_info=True,
                    )
