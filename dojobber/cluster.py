"""Executors for ``configure(executor=...)`` and ``dojobber run --executor``.

:func:`open_executor` turns a short spec into a ready executor and closes it
afterwards::

    with open_executor("dask://127.0.0.1:8786") as executor:
        dojob.configure(Root, executor=executor)
        dojob.checknrun()

Specs:

``threads:N``
    N threads in this process (the same as ``configure(workers=N)``).
``processes:N``
    A :class:`concurrent.futures.ProcessPoolExecutor` of N processes (jobs
    must be importable by name: defined at module level).
``dask-local:N``
    A dask.distributed ``LocalCluster`` of N worker processes on this
    machine (extra ``dask``).
``dask://HOST:PORT`` (or ``tcp://HOST:PORT``)
    An existing dask scheduler, started with ``dask scheduler`` and fed by
    ``dask worker tcp://HOST:PORT`` on as many machines as you like.

``processes:N`` and ``dask-local:N`` start worker processes that import the
main script again: in a script, open them under
``if __name__ == "__main__":`` (or in a function called from there), never
at its top level.  :class:`ExecutorStartError` says so when it happens.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ._timeout import worker_signals
from .errors import ConfigurationError, DojobberError

__all__ = ["ExecutorStartError", "open_executor", "stop_workers"]

#: How to end the worker processes of the executors open_executor() started
#: (for :func:`stop_workers`).
_stoppers: weakref.WeakKeyDictionary[cf.Executor, Callable[[], None]] = \
    weakref.WeakKeyDictionary()


def stop_workers(executor: cf.Executor) -> None:
    """End the worker processes of an executor :func:`open_executor` started
    (process pool, ``dask-local``) now, attempts running on them included:
    after a second Ctrl-C abandoned those attempts, so that none is left
    running without the run.  Does nothing for other executors (a dask
    scheduler's workers are not ours to end)."""
    stop = _stoppers.pop(executor, None)
    if stop is not None:
        stop()


def dask_setup(worker: Any) -> None:
    """dask preload of the ``dask-local`` workers: they ignore SIGINT.  A
    terminal's Ctrl-C goes to the whole process group; the run's own
    process decides what happens (it waits for the attempts running, and a
    second Ctrl-C ends the workers: :func:`stop_workers`), where dask would
    otherwise kill each worker with a traceback."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _end_processes(pool: cf.ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # (Python >= 3.14)
    if terminate is not None:
        terminate()
        return
    processes = dict(getattr(pool, "_processes", None) or {})
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        process.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


def _close_quietly(cluster: Any) -> None:
    try:
        cluster.close(timeout=10)
    except Exception as err:  # (ending anyway)
        log.warning("the dask cluster did not close cleanly: %s", err)

log = logging.getLogger("dojobber")

#: What to do when worker processes re-run the main script.
MAIN_GUARD_HINT = (
    "worker processes import the main script again, so a script must open "
    "this executor under 'if __name__ == \"__main__\":' (or in a function "
    "called from there), not at its top level"
)


class ExecutorStartError(DojobberError, RuntimeError):
    """An executor's worker processes could not be started."""

    def __init__(self, spec: str, reason: str) -> None:
        self.spec = spec
        super().__init__(f"cannot open the executor {spec!r}: {reason}")


def _in_a_worker_importing_main() -> bool:
    """True while a spawned worker process imports the main script (there
    ``__main__`` is loaded under the name ``__mp_main__``)."""
    main = sys.modules.get("__main__")
    return getattr(main, "__name__", None) == "__mp_main__"


def _refuse_nested_start(spec: str) -> None:
    if _in_a_worker_importing_main():
        raise ExecutorStartError(spec, f"this is a worker process; {MAIN_GUARD_HINT}")


def _main_is_a_script() -> bool:
    return bool(getattr(sys.modules.get("__main__"), "__file__", None))


def _count(spec: str, text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigurationError(
            "executor", spec, "the count after ':' must be a whole number >= 1"
        )
    return n


@contextmanager
def open_executor(spec: str) -> Iterator[cf.Executor]:
    """Open the executor ``spec`` names (see the module doc); close it after."""
    kind, _, rest = spec.partition(":")
    with ExitStack() as stack:
        if kind == "threads":
            yield stack.enter_context(cf.ThreadPoolExecutor(_count(spec, rest)))
        elif kind == "processes":
            _refuse_nested_start(spec)
            pool = stack.enter_context(cf.ProcessPoolExecutor(
                _count(spec, rest), initializer=worker_signals))
            _stoppers[pool] = lambda: _end_processes(pool)
            yield pool
        elif kind in ("dask-local", "dask", "tcp"):
            try:
                import distributed
            except ImportError as err:
                raise ConfigurationError(
                    "executor", spec, "dask executors need the 'dask' extra: "
                    "pip install 'dojobber[dask]'"
                ) from err
            dask: Any = distributed  # untyped package
            if kind == "dask-local":
                workers = _count(spec, rest)
                _refuse_nested_start(spec)
                try:
                    cluster = dask.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True,
                        # The scheduler's HTTP server (metrics, health)
                        # runs even without a dashboard: on loopback, at a
                        # free port (None would take 8787 on every interface).
                        dashboard_address="127.0.0.1:0", host="127.0.0.1",
                        silence_logs=logging.WARNING,
                        # (each worker runs dask_setup below)
                        preload=["dojobber.cluster"],
                    )
                except Exception as err:
                    why = f"its worker processes did not start ({err})"
                    if _main_is_a_script():
                        why += f"; {MAIN_GUARD_HINT}"
                    raise ExecutorStartError(spec, why) from err
                stack.enter_context(cluster)
                client = stack.enter_context(dask.Client(cluster))
                local_cluster = cluster
            else:
                address = "tcp:" + rest if rest.startswith("//") else ""
                if not address:
                    raise ConfigurationError(
                        "executor", spec, "write the scheduler as dask://HOST:PORT"
                    )
                client = stack.enter_context(dask.Client(address, timeout=30))
            # pure=False: every attempt is a new task (no argument hashing)
            executor: cf.Executor = client.get_executor(pure=False)
            if kind == "dask-local":
                _stoppers[executor] = lambda: _close_quietly(local_cluster)
            yield executor
        else:
            raise ConfigurationError(
                "executor", spec,
                "use threads:N, processes:N, dask-local:N or dask://HOST:PORT",
            )
