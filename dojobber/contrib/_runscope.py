"""Helpers shared by the libvirt and SSH jobs: published results, job
references and connections kept for one run.

Published results (the job context)
    Bundled jobs record what later jobs need in the *job context*
    ``global_storage["kanku"]``, the same layout the OBS and download jobs
    use: ``["kanku"]["jobs"][<job name>]`` is each job's result dict (job
    names are unique in a graph, so two VMs never clash), and plain context
    keys such as ``["kanku"]["domain_name"]`` / ``["kanku"]["ip"]`` hold the
    last value written (handy in graphs with one VM).  The ``"kanku"`` dict
    is replaced, never changed in place, so executors in other processes
    report it back.

Job references
    Options such as ``domain``, ``image`` or ``address_from`` take a job
    class (or its name) instead of a literal value; :func:`job_result` reads
    what that job recorded.

Run-scoped pools
    Connections are kept in a :class:`RunPool` stored in ``global_storage``,
    so every job of one run in the same process reuses them; the jobs'
    ``Cleanup`` closes them.  A pool pickles as an empty pool (connections
    never cross a process boundary).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from ..errors import RunError
from ..job import Job

__all__ = [
    "CONTEXT_KEY",
    "NotConvergedError",
    "RunPool",
    "context_value",
    "job_name",
    "job_result",
    "publish",
    "results_of_deps",
    "run_pool",
]

_C = TypeVar("_C")

#: ``global_storage[CONTEXT_KEY]`` is the job context (same key as the OBS jobs').
CONTEXT_KEY = "kanku"
_lock = threading.Lock()


_E = TypeVar("_E", bound="ReconstructibleError")


class ReconstructibleError(Exception):
    """Mixin for errors whose ``__init__`` takes other arguments than the
    message: they pickle (to and from executor processes) by calling the
    class again with the arguments they were made with."""

    _init_args: tuple[Any, ...] = ()
    _init_kwargs: dict[str, Any] = {}

    def __new__(cls: type[_E], *args: Any, **kwargs: Any) -> _E:
        self = super().__new__(cls, *args)
        self._init_args = args
        self._init_kwargs = kwargs
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial(type(self), **self._init_kwargs), self._init_args,
                self.__dict__)


class NotConvergedError(ReconstructibleError, RunError):
    """A bundled job's Check found its fact does not hold (yet); Run follows."""

    def __init__(self, job: str, what: str) -> None:
        self.job = job
        super().__init__(f"{job}: {what}")


def job_name(ref: type[Job] | str) -> str:
    """The name of a job given as a class or as its name."""
    return ref if isinstance(ref, str) else ref.__name__


def publish(global_storage: dict[str, Any] | None, job: str, result: Mapping[str, Any],
            context: Mapping[str, Any]) -> None:
    """Record ``result`` as the context's ``["jobs"][job]`` and set the plain
    context keys ``context`` (last writer wins)."""
    if global_storage is None:
        return
    with _lock:
        old = global_storage.get(CONTEXT_KEY) or {}
        new = dict(old)
        jobs = dict(old.get("jobs") or {})
        jobs[job] = dict(result)
        new.update(context)
        new["jobs"] = jobs
        global_storage[CONTEXT_KEY] = new


def job_result(global_storage: dict[str, Any] | None,
               ref: type[Job] | str) -> dict[str, Any] | None:
    """What job ``ref`` recorded with :func:`publish` in this run, or None."""
    if not global_storage:
        return None
    found = (global_storage.get(CONTEXT_KEY) or {}).get("jobs", {}).get(job_name(ref))
    return dict(found) if found is not None else None


def context_value(global_storage: dict[str, Any] | None, key: str) -> Any:
    """A plain context key (``domain_name``, ``ip``, ...), or None."""
    if not global_storage:
        return None
    return (global_storage.get(CONTEXT_KEY) or {}).get(key)


def results_of_deps(job: type[Job], global_storage: dict[str, Any] | None,
                    key: str) -> list[tuple[str, Any]]:
    """``(dependency name, value)`` for each direct dependency of ``job``
    whose recorded result holds ``key``."""
    found: list[tuple[str, Any]] = []
    for dep in job.DEPS:
        value = job_result(global_storage, dep)
        if value is not None and value.get(key) is not None:
            found.append((dep.__name__, value[key]))
    return found


def with_default_deps(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    """For ``variant()``: when ``DEPS`` is not given, depend on the job
    classes given as the options ``keys``."""
    if "DEPS" in options:
        return options
    deps = [options[k] for k in keys if isinstance(options.get(k), type)
            and issubclass(options[k], Job)]
    if deps:
        options = {**options, "DEPS": deps}
    return options


class RunPool(Generic[_C]):
    """Connections for one run, keyed by where they go; thread-safe.

    ``get(key, connect)`` returns the open connection for ``key``, making it
    with ``connect()`` the first time (one connect per key even when several
    threads ask at once).  ``close_all()`` closes everything with ``close``.
    """

    def __init__(self, close: Callable[[_C], None]) -> None:
        self._close = close
        self._items: dict[Hashable, _C] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, connect: Callable[[], _C],
            alive: Callable[[_C], bool] | None = None) -> _C:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            item = self._items.get(key)
            if item is not None and (alive is None or alive(item)):
                return item
            if item is not None:
                self._discard(key)
            item = connect()
            self._items[key] = item
            return item

    def _discard(self, key: Hashable) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            # Closing a dead connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._close(item)

    def discard(self, key: Hashable) -> None:
        """Close and forget the connection for ``key`` (if any)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            self._discard(key)

    def keys(self) -> Iterable[Hashable]:
        return list(self._items)

    def close_all(self) -> None:
        """Close every connection; the pool stays usable."""
        for key in list(self._items):
            self.discard(key)

    def __len__(self) -> int:
        return len(self._items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RunPool, (self._close,))


def run_pool(
    global_storage: dict[str, Any] | None, key: str, close: Callable[[_C], None]
) -> RunPool[_C]:
    """The run's pool stored under ``key`` in ``global_storage`` (made on
    first use).  Without a global storage (a job used outside a run), a
    private pool is returned."""
    if global_storage is None:
        return RunPool(close)
    pool = global_storage.get(key)
    if not isinstance(pool, RunPool):
        pool = global_storage.setdefault(key, RunPool(close))
    return pool
