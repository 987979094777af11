"""Which job and phase the current thread is running (for log capture).

The attempt sets it around each phase when anyone listens; a logging handler
installed for the run reads it to attribute log records to their job.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from .events import EventBus

__all__ = [
    "LogRouter",
    "OutputCapture",
    "current",
    "original_stream",
    "phase_slot",
    "report_progress",
]

#: ``(job, phase, attempt, emit)`` of the phase running on this thread.
Current = tuple[str, str, int, Callable[..., None]]

#: The slot of each thread that runs attempts, by thread id: a list
#: ``[job class, phase, attempt, emit]`` that the attempt fills in (a store
#: per phase, no object made), with the class None between attempts.
Slot = list[Any]
_slots: dict[int, Slot] = {}


def current() -> Current | None:
    """What this thread is running: ``(job, phase, attempt, emit)``, or None."""
    slot = _slots.get(threading.get_ident())
    if slot is None or slot[0] is None:
        return None
    return (slot[0].__name__, slot[1], slot[2], slot[3])


@contextlib.contextmanager
def phase_slot(emit: Callable[..., None]) -> Iterator[Slot]:
    """A slot for attempts run on this thread (``emit`` sends what they
    log and report); the thread's previous slot, if any (a run inside a
    job of another run), is back when the block ends."""
    ident = threading.get_ident()
    before = _slots.get(ident)
    slot: Slot = [None, "", 0, emit]
    _slots[ident] = slot
    try:
        yield slot
    finally:
        if before is None:
            _slots.pop(ident, None)
        else:
            _slots[ident] = before


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

    Capture level: loggers drop records below their effective level before
    any handler sees them, and the root logger is WARNING by default.  When
    a listener that wants ``log`` sets :attr:`~dojobber.Listener.log_level`
    lower than that (the records listener asks for INFO), the root logger's
    level is lowered for the run and every handler already attached gets a
    filter that drops what its logger would have dropped before, so the
    user's console output stays as it was.  A logger with a level of its own
    keeps it: set it lower yourself to capture more from it.

    Also, because this handler sits on the root logger, Python would no
    longer fall back to :data:`logging.lastResort` ("no handlers could be
    found": warnings on stderr); this handler does that fallback itself.
    """

    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.NOTSET)
        self.bus = bus
        self._saved_level: int | None = None
        self._filtered: list[logging.Handler] = []
        self._keep: _KeepOutput | None = None

    def emit(self, record: logging.LogRecord) -> None:
        where = current()
        if where is not None:
            self.bus.emit("log", where[0], where[1], record)
        last = logging.lastResort
        if (
            last is not None
            and record.levelno >= last.level
            and (self._keep is None or self._keep.filter(record))
            and not _other_handlers(record.name, self)
        ):
            last.handle(record)

    def __enter__(self) -> LogRouter:
        root = logging.getLogger()
        wanted = _wanted_level(self.bus)
        before = root.level
        if wanted is not None and wanted < root.getEffectiveLevel():
            keep = self._keep = _KeepOutput(before)
            for handler in _all_handlers():
                handler.addFilter(keep)
                self._filtered.append(handler)
            self._saved_level = before
            root.setLevel(wanted)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        if self._saved_level is not None:
            root.setLevel(self._saved_level)
            self._saved_level = None
        for handler in self._filtered:
            if self._keep is not None:
                handler.removeFilter(self._keep)
        self._filtered.clear()
        self._keep = None


def _wanted_level(bus: EventBus) -> int | None:
    """Lowest ``log_level`` of the listeners that want ``log`` events."""
    if not bus.wants("log"):
        return None
    levels = [
        listener.log_level
        for listener in bus.listeners
        if listener.log_level is not None
    ]
    return min(levels) if levels else None


def _all_handlers() -> list[logging.Handler]:
    """Every handler attached to the root logger or any named logger."""
    seen: dict[int, logging.Handler] = {}
    loggers: list[logging.Logger] = [logging.getLogger()]
    for obj in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(obj, logging.Logger):
            loggers.append(obj)
    for logger in loggers:
        for handler in logger.handlers:
            seen.setdefault(id(handler), handler)
    return list(seen.values())


def _other_handlers(name: str, router: logging.Handler) -> bool:
    """Whether a record of logger ``name`` reaches a handler but ``router``."""
    logger: logging.Logger | None = (
        logging.getLogger(name) if name != "root" else logging.getLogger()
    )
    while logger is not None:
        if any(h is not router for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


class _KeepOutput(logging.Filter):
    """Drops records that their logger would have dropped before the run
    lowered the root level (``root_level`` is the root's level then)."""

    def __init__(self, root_level: int) -> None:
        super().__init__()
        self.root_level = root_level
        self._levels: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        level = self._levels.get(record.name)
        if level is None:
            level = self._levels[record.name] = self._level_of(record.name)
        return record.levelno >= level

    def _level_of(self, name: str) -> int:
        root = logging.getLogger()
        logger: logging.Logger | None = logging.getLogger(name) if name != "root" else root
        while logger is not None and logger is not root:
            if logger.level:
                return logger.level
            logger = logger.parent
        return self.root_level


class _PhaseStream:
    """Stands in for ``sys.stdout`` / ``sys.stderr`` during a run: writes go
    through to the real stream, and whole lines written inside a job's phase
    are also sent to the listeners as log records of logger ``name``."""

    def __init__(self, name: str, level: int, real: TextIO) -> None:
        self._dojobber_original = real
        self._name = name
        self._level = level
        self._lock = threading.Lock()
        #: Per thread: (job, phase, emit) and the unfinished line.
        self._partial: dict[int, tuple[Current, str]] = {}

    def write(self, text: str) -> int:
        n = self._dojobber_original.write(text)
        where = current()
        key = threading.get_ident()
        with self._lock:
            held = self._partial.pop(key, None)
        if held is not None and (where is None or held[0][:2] != where[:2]):
            self._send(held[0], held[1])
            held = None
        if where is None:
            return n
        pending = (held[1] if held is not None else "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            self._send(where, line)
        if rest:
            with self._lock:
                self._partial[key] = (where, rest)
        return n

    def _send(self, where: Current, line: str) -> None:
        record = logging.LogRecord(self._name, self._level, "", 0, line.rstrip("\r"), None, None)
        where[3]("log", where[0], where[1], record)

    def finish(self) -> None:
        """Send every unfinished line."""
        with self._lock:
            held, self._partial = list(self._partial.values()), {}
        for where, text in held:
            self._send(where, text)

    def flush(self) -> None:
        self._dojobber_original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dojobber_original, name)


def original_stream(stream: TextIO) -> TextIO:
    """The real stream behind a capturing stand-in (or ``stream`` itself)."""
    return cast(TextIO, getattr(stream, "_dojobber_original", stream))


class OutputCapture:
    """Captures what jobs print: for the duration, ``sys.stdout`` and
    ``sys.stderr`` are replaced by tees that also send each line written
    during a job's phase to the listeners as a log record (logger
    ``stdout`` at INFO, ``stderr`` at WARNING).  Output still reaches the
    terminal.  Writes to the file descriptors (child processes) are not seen.
    """

    def __init__(self) -> None:
        self._streams: list[tuple[str, _PhaseStream]] = []

    def __enter__(self) -> OutputCapture:
        for attr, level in (("stdout", logging.INFO), ("stderr", logging.WARNING)):
            real = getattr(sys, attr)
            if isinstance(real, _PhaseStream):
                continue  # already captured by an outer run
            proxy = _PhaseStream(attr, level, real)
            setattr(sys, attr, proxy)
            self._streams.append((attr, proxy))
        return self

    def __exit__(self, *exc: object) -> None:
        for attr, proxy in self._streams:
            proxy.finish()
            if getattr(sys, attr) is proxy:
                setattr(sys, attr, proxy._dojobber_original)
        self._streams.clear()
