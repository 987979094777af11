"""A board worker: claim run requests, converge them, record the outcome.

``dojobber worker`` runs :func:`run_worker`.  Each claimed request is one
``checknrun()`` of its root with its arguments, in this process, with run
records (when a records path is given) and an optional single-run lock.
While it runs, a heartbeat renews the claim's lease; if the request was
cancelled meanwhile, or the claim was lost (this worker stalled longer than
the lease and another took over), the run stops after the jobs now running.
A worker that dies simply stops renewing: its lease expires and another
worker claims the request again — safe, since every job checks first.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dojobber import DoJobber
from ..errors import DojobberError
from ..job import Job
from ..loader import load_root
from .base import Board, Request, worker_name

__all__ = ["WorkerOptions", "carry_out", "run_worker"]

log = logging.getLogger("dojobber.worker")


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves; the CLI's flags map onto these."""

    #: Requests carried out at the same time (each on its own thread).
    concurrency: int = 1
    #: Return when nothing is due instead of waiting for more.
    once: bool = False
    #: Seconds a claim lasts without a heartbeat (renewed every third of it).
    lease: float = 30.0
    #: Longest wait between looks at the board when it has nothing due
    #: (a board that wakes its workers, such as PostgreSQL's, returns sooner).
    poll: float = 1.0
    #: Run records database for the runs (None: no records).
    records: str | os.PathLike[str] | None = None
    #: Lock file per run (``{root}`` is replaced by the root job's name).
    lock: str | None = None
    #: Name on the board (default ``host:pid``).
    name: str | None = None


def carry_out(
    board: Board,
    request: Request,
    options: WorkerOptions,
    loader: Callable[[str], type[Job]] = load_root,
) -> str | None:
    """Run one claimed request and record its outcome; returns the state the
    request is in afterwards (None if the claim was lost meanwhile)."""
    name = options.name or worker_name()
    try:
        root = loader(request.target)
        dojob = DoJobber()
        lock = options.lock.replace("{root}", root.__name__) if options.lock else None
        dojob.configure(root, records=options.records, lock=lock, lock_timeout=None)
    except DojobberError as err:
        return board.finish(request.id, name, False, f"cannot start: {err}")
    dojob.set_args(*request.args, **request.kwargs)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(options.lease / 3):
            try:
                state = board.heartbeat(request.id, name, options.lease)
            except DojobberError as err:  # the board is busy or gone: try again
                log.warning("request %s: heartbeat failed: %s", request.id, err)
                continue
            if state != "ok":
                log.info("request %s: %s; stopping after the running jobs",
                         request.id, "cancelled" if state == "cancel" else "claim lost")
                dojob.stop()
                return

    beat = threading.Thread(target=heartbeat, name=f"dojobber-heartbeat-{request.id}",
                            daemon=True)
    beat.start()
    try:
        result = dojob.checknrun()
        outcome, success = result.summary(), result.success()
    except DojobberError as err:
        outcome, success = f"error: {err}", False
    finally:
        done.set()
        beat.join()
        if dojob.records is not None:
            dojob.records.close()
    run_id = getattr(dojob.records, "run_id", None)
    return board.finish(request.id, name, success, outcome,
                        None if run_id is None else str(run_id))


def run_worker(
    board: Board,
    options: WorkerOptions = WorkerOptions(),
    stop: threading.Event | None = None,
    loader: Callable[[str], type[Job]] = load_root,
) -> int:
    """Claim and carry out requests until ``stop`` is set (or, with
    ``options.once``, until nothing is due).  Returns how many it ran."""
    stop = stop or threading.Event()
    name = options.name or worker_name()
    options = WorkerOptions(**{**options.__dict__, "name": name})
    count = 0
    running: set[cf.Future[Any]] = set()
    with cf.ThreadPoolExecutor(options.concurrency, thread_name_prefix="dojobber-worker") as pool:
        while not stop.is_set():
            while len(running) < options.concurrency and not stop.is_set():
                request = board.claim(name, options.lease)
                if request is None:
                    break
                log.info("request %s: claimed (%s, attempt %s)",
                         request.id, request.target, request.attempts)
                running.add(pool.submit(carry_out, board, request, options, loader))
            if not running:
                if options.once:
                    break
                board.wait(options.poll, stop)
                continue
            done, running = cf.wait(running, timeout=options.poll,
                                    return_when=cf.FIRST_COMPLETED)
            for fut in done:
                fut.result()  # a bug in carry_out should not pass silently
                count += 1
        cf.wait(running)
        for fut in running:
            fut.result()
            count += 1
    return count
