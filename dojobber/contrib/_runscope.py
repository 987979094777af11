"""Helpers shared by the libvirt and SSH jobs: published results, job
references and connections kept for one run.

Published results
    A bundled job that learns something later jobs need (a domain's name,
    its address) stores it in ``global_storage[<its job name>]`` as a dict
    (job names are unique in a graph, so two VMs never clash) and, for
    graphs with one VM, also under flat keys (``domain_name``, ``ip``).

Job references
    Options such as ``domain`` or ``address_from`` take a job class (or its
    name) instead of a literal value; :func:`published` reads what that job
    stored.

Run-scoped pools
    Connections are kept in a :class:`RunPool` stored in ``global_storage``,
    so every job of one run in the same process reuses them; the jobs'
    ``Cleanup`` closes them.  A pool pickles as an empty pool (connections
    never cross a process boundary).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from ..errors import RunError
from ..job import Job

__all__ = ["NotConvergedError", "RunPool", "job_name", "published", "run_pool"]

_C = TypeVar("_C")


class NotConvergedError(RunError):
    """A bundled job's Check found its fact does not hold (yet); Run follows."""

    def __init__(self, job: str, what: str) -> None:
        self.job = job
        super().__init__(f"{job}: {what}")


def job_name(ref: type[Job] | str) -> str:
    """The name of a job given as a class or as its name."""
    return ref if isinstance(ref, str) else ref.__name__


def published(global_storage: dict[str, Any] | None, ref: type[Job] | str) -> Any:
    """What job ``ref`` stored in ``global_storage[<its name>]`` (or None)."""
    if global_storage is None:
        return None
    return global_storage.get(job_name(ref))


def published_by_deps(
    job: type[Job], global_storage: dict[str, Any] | None, key: str
) -> list[tuple[str, Any]]:
    """``(dependency name, value)`` for each direct dependency of ``job``
    that published a dict holding ``key``."""
    found: list[tuple[str, Any]] = []
    for dep in job.DEPS:
        value = published(global_storage, dep)
        if isinstance(value, dict) and value.get(key) is not None:
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
