"""A thread pool whose threads may be left behind: :class:`DaemonThreads`.

The pooled loop uses it instead of :class:`concurrent.futures.ThreadPoolExecutor`
when jobs of the graph have a ``TIMEOUT``.  An attempt past its timeout is
abandoned on the thread that runs it (Python cannot stop a thread), so:

* its threads are daemon threads: the interpreter's exit does not wait for
  an abandoned attempt (a ``ThreadPoolExecutor`` joins its threads at exit);
* :meth:`DaemonThreads.replace` adds a thread for one left running an
  abandoned attempt, so the run keeps its ``workers``.  That thread, once
  its attempt returns, serves the pool again (one more idle thread until
  :meth:`~DaemonThreads.shutdown`).
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonThreads"]

_T = TypeVar("_T")

_Item = tuple["cf.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreads(cf.Executor):
    """``workers`` daemon threads taking calls off one queue."""

    def __init__(self, workers: int, name: str = "dojobber") -> None:
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._name = name
        self._threads = 0
        self._closed = False
        self._lock = threading.Lock()
        for _ in range(workers):
            self.replace()

    def replace(self) -> None:
        """Add a thread (for one left running an abandoned attempt)."""
        with self._lock:
            if self._closed:
                return
            self._threads += 1
            n = self._threads
        threading.Thread(target=self._serve, name=f"{self._name}_{n}", daemon=True).start()

    def _serve(self) -> None:
        work = self._work
        while True:
            item = work.get()
            if item is None:
                return
            fut, fn, args, kwargs = item
            item = None
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args, **kwargs))
                except BaseException as err:  # (the future's to carry)
                    fut.set_exception(err)
            # An idle thread keeps nothing of its last call.
            fut = fn = args = kwargs = None  # type: ignore[assignment]

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> cf.Future[_T]:
        if self._closed:
            raise RuntimeError("cannot submit to a pool that was shut down")
        fut: cf.Future[_T] = cf.Future()
        self._work.put((fut, fn, args, kwargs))
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once they are idle; ``cancel_futures`` cancels
        the calls not started.  ``wait`` is not supported (a thread may be
        left running an abandoned attempt): it never waits."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in range(threads):
            self._work.put(None)
