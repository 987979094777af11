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
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from .errors import ConfigurationError

__all__ = ["open_executor"]


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
            yield stack.enter_context(cf.ProcessPoolExecutor(_count(spec, rest)))
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
                cluster = stack.enter_context(
                    dask.LocalCluster(
                        n_workers=_count(spec, rest), threads_per_worker=1, processes=True,
                        dashboard_address=None, host="127.0.0.1",
                        silence_logs=logging.WARNING,
                    )
                )
                client = stack.enter_context(dask.Client(cluster))
            else:
                address = "tcp:" + rest if rest.startswith("//") else ""
                if not address:
                    raise ConfigurationError(
                        "executor", spec, "write the scheduler as dask://HOST:PORT"
                    )
                client = stack.enter_context(dask.Client(address, timeout=30))
            # pure=False: every attempt is a new task (no argument hashing)
            executor: cf.Executor = client.get_executor(pure=False)
            yield executor
        else:
            raise ConfigurationError(
                "executor", spec,
                "use threads:N, processes:N, dask-local:N or dask://HOST:PORT",
            )
