"""A board worker: claim run requests, converge them, record the outcome.

``dojobber worker`` runs :func:`run_worker`.  Each claimed request is one
``checknrun()`` of its root with its arguments, in this process, with run
records (when a records path is given) and an optional single-run lock.
While it runs, a heartbeat renews the claim's lease; if the request was
cancelled meanwhile, or the claim was lost (this worker stalled longer than
the lease and another took over), the run stops after the jobs now running.
A worker that dies simply stops renewing: its lease expires and another
worker claims the request again (when it has attempts left) — safe, since
every job checks first.

A worker checks its own configuration (records path, lock directory) before
it claims anything: :func:`check_options` raises :class:`WorkerSetupError`
(the CLI exits 2 with that one line).  A fault of the worker found while
carrying a request out (its records or lock cannot be used) hands the claim
back untouched and stops the worker: a worker's own fault never fails a
request.  ``on_done`` (CLI: one line per request on stderr) hears of every
request carried out.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..dojobber import DoJobber
from ..errors import DojobberError
from ..job import Job
from ..loader import load_root
from ..records import RecordsError, open_writer
from .base import Board, Request, worker_name

__all__ = ["Carried", "WorkerOptions", "WorkerSetupError", "carry_out", "check_options",
           "run_worker"]


class WorkerSetupError(DojobberError):
    """The worker's own configuration cannot work (records, lock); no
    request is claimed (or the claim is handed back)."""


@dataclass(frozen=True)
class Carried:
    """What became of one request a worker carried out."""

    request: Request
    #: Its state afterwards (None: the claim was lost meanwhile).
    state: str | None
    outcome: str
    run_id: str | None

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


def check_options(options: WorkerOptions) -> None:
    """Raise :class:`WorkerSetupError` (one line) when the worker's records
    or lock cannot be used; creates the records file and the lock's
    directory as a run would."""
    if options.records is not None:
        try:
            open_writer(options.records).close()  # a file, or a postgresql:// URL
        except RecordsError as err:
            raise WorkerSetupError(f"worker not started: {err}") from None
    if options.lock:
        lock = os.path.abspath(options.lock.replace("{root}", "root"))
        directory = os.path.dirname(lock)
        try:
            os.makedirs(directory, exist_ok=True)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"{directory} is not writable")
            if os.path.isdir(lock):
                raise IsADirectoryError(f"{lock} is a directory")
        except OSError as err:
            raise WorkerSetupError(
                f"worker not started: the lock {options.lock} cannot be made ({err}); "
                "give --lock a path in a writable directory"
            ) from None


def carry_out(
    board: Board,
    request: Request,
    options: WorkerOptions,
    loader: Callable[[str], type[Job]] = load_root,
) -> Carried:
    """Run one claimed request and record its outcome.

    Raises :class:`WorkerSetupError` after handing the claim back when the
    worker's own records or lock fail (not the request's fault)."""
    name = options.name or worker_name()
    try:
        root = loader(request.target)
        dojob = DoJobber()
        lock = options.lock.replace("{root}", root.__name__) if options.lock else None
        dojob.configure(root, records=options.records, lock=lock, lock_timeout=None)
    except RecordsError as err:
        _hand_back(board, request, name)
        raise WorkerSetupError(f"worker stopped: {err}") from err
    except DojobberError as err:
        outcome = f"cannot start: {err}"
        return Carried(request, board.finish(request.id, name, False, outcome), outcome, None)
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
    except OSError as err:  # the lock file could not be made: the worker's fault
        if dojob.result is not None:
            raise
        _hand_back(board, request, name)
        raise WorkerSetupError(f"worker stopped: cannot take the run lock ({err})") from err
    except DojobberError as err:
        outcome, success = f"error: {err}", False
    finally:
        done.set()
        beat.join()
        if dojob.records is not None:
            dojob.records.close()
    run_id = getattr(dojob.records, "run_id", None)
    run = None if run_id is None else str(run_id)
    return Carried(request, board.finish(request.id, name, success, outcome, run), outcome, run)


def _hand_back(board: Board, request: Request, name: str) -> None:
    if not board.release(request.id, name):
        log.warning("request %s: could not hand the claim back; it is claimed again when "
                    "its lease expires", request.id)


def run_worker(
    board: Board,
    options: WorkerOptions = WorkerOptions(),
    stop: threading.Event | None = None,
    loader: Callable[[str], type[Job]] = load_root,
    on_done: Callable[[Carried], None] | None = None,
) -> int:
    """Claim and carry out requests until ``stop`` is set (or, with
    ``options.once``, until nothing is due).  Returns how many it ran;
    ``on_done`` is called (on this thread) with each :class:`Carried`.

    Checks the options first (:func:`check_options`); raises
    :class:`WorkerSetupError`, having claimed nothing, when they cannot
    work, or after the requests running finish when a fault of the worker's
    own shows while carrying one out.
    """
    check_options(options)
    stop = stop or threading.Event()
    setup_error: WorkerSetupError | None = None

    def settle(fut: cf.Future[Carried]) -> None:
        nonlocal setup_error
        try:
            carried = fut.result()  # a bug in carry_out should not pass silently
        except WorkerSetupError as err:
            setup_error = err
            stop.set()
            return
        if on_done is not None:
            on_done(carried)

    name = options.name or worker_name()
    options = WorkerOptions(**{**options.__dict__, "name": name})
    count = 0
    running: set[cf.Future[Carried]] = set()
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
                settle(fut)
                count += 1
        cf.wait(running)
        for fut in running:
            settle(fut)
            count += 1
    if setup_error is not None:
        raise setup_error
    return count
