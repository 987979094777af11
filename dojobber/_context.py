"""Which job and phase the current thread is running (for log capture).

The attempt sets it around each phase when anyone listens; a logging handler
installed for the run reads it to attribute log records to their job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import EventBus

__all__ = ["LogRouter", "current", "report_progress", "set_current"]

_local = threading.local()

#: ``(job, phase, attempt, emit)`` of the phase running on this thread.
Current = tuple[str, str, int, Callable[..., None]]


def current() -> Current | None:
    """What this thread is running: ``(job, phase, attempt, emit)``, or None."""
    return getattr(_local, "job", None)


def set_current(value: Current | None) -> None:
    _local.job = value


def report_progress(done: float, total: float | None = None, unit: str = "") -> None:
    """Tell listeners how far the running job's phase has come.

    Call it from ``Check`` or ``Run`` (for example per chunk of a download):
    ``report_progress(bytes_so_far, size, "B")``.  Listeners get
    :meth:`~dojobber.Listener.progress`; outside a run, or when nobody
    listens, it does nothing.
    """
    where = current()
    if where is not None:
        where[3]("progress", where[0], done, total, unit)


class LogRouter(logging.Handler):
    """Sends log records made inside a job's phase to the listeners' ``log``.

    Installed on the root logger for the duration of a run that has
    listeners; records made outside any phase pass it by.
    """

    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.NOTSET)
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        where = current()
        if where is not None:
            self.bus.emit("log", where[0], where[1], record)

    def __enter__(self) -> LogRouter:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
