"""Run records in SQLite: every run, every job, every log line.

``configure(records=path)`` (or ``listeners=[RecordsListener(path, ...)]``)
writes each run into a SQLite database; :class:`RecordStore` reads it back
(and the ``dojobber history`` / ``dojobber show`` commands print it).  The
command line records by default at :func:`default_path`
(``$DOJOBBER_RECORDS``, else ``$XDG_STATE_HOME/dojobber/records.sqlite3``).

Stored per run: root, target, script and its arguments (values of
secret-looking names masked), host, user, pid, start, end, outcome
(``running`` until the run ends, then its :class:`~dojobber.RunOutcome`:
``converged``, ``not_converged``, ``stopped``, ``interrupted``) and counts; per job:
status, tries, start, duration, and for jobs with more to say the repr of
the result, the exception, its traceback and every phase with its duration;
the log records (and optionally printed lines) of each job's phases; and the
graph (names and edges, stored once per distinct graph), so that a stored
run can be drawn.

Writes are batched: finished jobs arrive in batches
(:meth:`~dojobber.Listener.jobs_finished`), are kept in memory and written
in one transaction every ``flush_rows`` rows or ``flush_interval`` seconds
(checked as batches and log records arrive, and by a timer thread while a
run lasts, so that a job that finished is on disk within half a second
even while a long job runs and nothing else happens), and at the end of the
run.  A run killed outright (SIGKILL, power loss) therefore keeps every job
that finished more than about a second before; the next opening of the
records marks it ``interrupted``.
Statuses are bound as plain ``str`` (binding the ``JobStatus`` str subclass
goes through sqlite3's adapter lookup and cost more than the insert).  A
writer thread was tried and was slower: the rows are built and bound under
the GIL either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterable
from typing import Any

from .._context import OutputCapture, current
from .._describe import exception_text
from .._paths import expand_path
from .._postgres import redact_url
from ..events import Listener, RoundInfo, RunInfo
from ..graph import JobGraph
from ..job import DummyJob
from ..results import JobResult, JobStatus, RunResult
from ._open import open_writer
from .masking import mask_argv, mask_secrets, mask_urls, short_repr
from .store import (
    Batch,
    GraphRow,
    RecordsWriter,
    RunEnd,
    RunRow,
    default_path,
    process_start,
    this_host,
    this_user,
)

__all__ = ["RecordsListener"]

log = logging.getLogger("dojobber.records")


def _error_text(error: BaseException | None) -> str | None:
    """"Type: message" of an exception (its repr when its str() raises),
    URL passwords masked."""
    text = exception_text(error)
    return None if text is None else mask_urls(text)


#: Each status as a plain str, for binding.
_STATUS_TEXT: dict[JobStatus, str] = {status: status.value for status in JobStatus}

#: Per graph: its digest, and the indices of its DummyJob jobs.
_DIGESTS: weakref.WeakKeyDictionary[JobGraph, tuple[str, list[int]]] = (
    weakref.WeakKeyDictionary()
)


def _subclasses(cls: type) -> set[type]:
    """``cls`` and all its subclasses (a set lookup is cheaper than
    ``issubclass`` on 20 000 classes)."""
    found: set[type] = {cls}
    todo: list[type] = [cls]
    while todo:
        subs: list[type] = todo.pop().__subclasses__()
        for sub in subs:
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _graph_digest(graph: JobGraph) -> tuple[str, list[int]]:
    """``(digest, dummy)``: a digest of the graph's names, edges and DummyJob
    jobs (which ``dummy`` lists by index), cached per graph.

    Cheaper than the JSON stored for a new graph (a run of an unchanged
    graph makes no JSON): the names joined by NUL and the edges pickled,
    after a header with their counts and length, so that different graphs
    never share a digest.  Equal graphs that pickle differently would only
    cost a second stored copy.
    """
    cached = _DIGESTS.get(graph)
    if cached is None:
        found = _subclasses(DummyJob).intersection(graph.classes)
        if len(found) <= 16:  # the usual few: a C scan each beats building an index
            dummy = sorted(map(graph.classes.index, found))
        else:
            index = graph.index  # names are unique per class in a graph
            dummy = sorted(index[cls.__name__] for cls in found)
        # (Python refuses NUL in a class name, so the join is unambiguous.)
        names = "\0".join(graph.names).encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(
            b"dojobber graph 2\0%d\0%d\0" % (len(graph.names), len(names))
        )
        digest.update(names)
        digest.update(pickle.dumps((graph.deps, dummy), 4))
        cached = _DIGESTS[graph] = (digest.hexdigest(), dummy)
    return cached


def _graph_json(graph: JobGraph, dummy: list[int]) -> str:
    """The stored form of a graph, read back by :func:`stored_run`."""
    return json.dumps(
        {"names": graph.names, "deps": graph.deps, "dummy": dummy}, separators=(",", ":")
    )


class RecordsListener(Listener):
    """Writes each run into the records database at ``path``.

    path: the database file (default :func:`default_path`).
    log_level: lowest level of log records stored (INFO by default; the
    run lowers the root logger for this without changing console output).
    capture_output: also store what jobs print to stdout / stderr.
    graph: the configured graph, for records of runs started without it.
    script / argv: what to store as the command (default ``sys.argv``).
    flush_rows / flush_interval: batch size and longest wait between writes.

    After a run, :attr:`run_id` is its id in the database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        log_level: int | None = logging.INFO,
        capture_output: bool = False,
        graph: JobGraph | None = None,
        script: str | None = None,
        argv: Iterable[str] | None = None,
        flush_rows: int = 5000,
        flush_interval: float = 0.5,
    ) -> None:
        self.path = default_path() if path is None else expand_path(path)
        self.log_level = log_level
        self.capture_output = capture_output
        self.graph = graph
        if script is None and sys.argv and sys.argv[0]:
            script = os.path.abspath(sys.argv[0])
        self.script = script
        self.argv = mask_argv(sys.argv[1:] if argv is None else argv)
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.run_id: int | None = None
        self.store: RecordsWriter | None = None
        self._run_jobs: tuple[str, ...] = ()
        self._index: dict[str, int] | None = None
        self._jobs: list[JobResult] = []
        self._logs: list[tuple[Any, ...]] = []
        #: The running run's graph, and whether its run row points to it yet.
        self._run_graph: JobGraph | None = None
        self._graph_linked = False
        self._capture: OutputCapture | None = None
        self._due = 0.0
        #: The converge round being run (None outside a converge session).
        self._round: RoundInfo | None = None
        #: Guards the buffers and the connection against the flush timer.
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None
        self._timer_stop = threading.Event()
        #: Cleanups that raised in the running run (see cleanup_finished).
        self._cleanup_failures = 0
        self._cleanups_done = True

    def __repr__(self) -> str:
        return f"RecordsListener({redact_url(self.path)!r})"

    def open(self) -> RecordsWriter:
        """Open (and create or migrate) the database now; raises
        :class:`RecordsError` when it cannot be used."""
        if self.store is None:
            self.store = open_writer(self.path)
        return self.store

    def close(self) -> None:
        self._stop_timer()
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        store = self.open()
        args = json.dumps(
            {"args": mask_secrets(run.args), "kwargs": mask_secrets(run.kwargs)}
        )
        self.run_id = store.start_run(RunRow(
            run.root, run.target, self.script, json.dumps(self.argv), args,
            this_host(), this_user(), os.getpid(), process_start(os.getpid()),
            bool(run.no_act), run.workers, run.started or time.time(), len(run.jobs),
            None if self._round is None else self._round.session,
            None if self._round is None else self._round.number,
        ))
        self._run_graph = run.graph if run.graph is not None else self.graph
        self._graph_linked = False
        self._run_jobs = run.jobs
        self._index = None
        self._jobs = []
        self._logs = []
        self._cleanup_failures = 0
        self._cleanups_done = False
        self._due = time.monotonic() + self.flush_interval
        if self.capture_output:
            self._capture = OutputCapture().__enter__()
        self._start_timer()

    def _start_timer(self) -> None:
        """Flush what is held every ``flush_interval`` seconds while the run
        lasts (the run's own events may not come for a long time)."""
        self._stop_timer()
        stop = self._timer_stop = threading.Event()
        interval = max(self.flush_interval, 0.01)

        def pause() -> float:
            # Until the next write is due (what is held waits no longer than
            # flush_interval); past it, a finished job writes at once.
            left = self._due - time.monotonic()
            return left if 0 < left < interval / 2 else interval / 2

        def tick() -> None:
            failed = False
            while not stop.wait(pause()):
                if not (self._jobs or self._logs) or time.monotonic() < self._due:
                    continue
                try:
                    self.flush()
                except Exception as err:  # the database is busy or gone: try later
                    if not failed:  # (logged outside the lock: logs come back here)
                        log.warning("run records: writing to %s failed (%s); will retry",
                                    self.path, err)
                    failed = True
                else:
                    failed = False

        self._timer = threading.Thread(target=tick, name="dojobber-records-timer", daemon=True)
        self._timer.start()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            self._timer_stop.set()
            if timer is not threading.current_thread():
                timer.join()

    def round_started(self, round: RoundInfo) -> None:
        self._round = round

    def round_finished(self, round: RoundInfo, result: RunResult) -> None:
        self._round = None

    def jobs_finished(self, results: list[JobResult]) -> None:
        with self._lock:
            jobs = self._jobs
            jobs.extend(results)
        if len(jobs) >= self.flush_rows or time.monotonic() >= self._due:
            self.flush()

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        if self.log_level is not None and record.levelno < self.log_level:
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        if "://" in message:
            message = mask_urls(message)
        where = current()
        attempt = where[2] if where is not None and where[0] == job else 0
        row = (self.run_id, job, phase, attempt, record.created, record.levelno, record.name,
               message)
        with self._lock:
            self._logs.append(row)
        if len(self._logs) >= self.flush_rows or time.monotonic() >= self._due:
            self.flush()

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        """A failed Cleanup is stored as an ERROR log line of the job (phase
        ``cleanup``, with its traceback) and makes the run's outcome
        ``not_converged`` even when every job converged."""
        if ok or self.run_id is None or self._cleanups_done:
            return
        text = f"Cleanup failed: {exception_text(error)}"
        if error is not None and error.__traceback__ is not None:
            text += "\n" + "".join(traceback.format_exception(error)).rstrip()
        text = mask_urls(text)
        row = (self.run_id, job, "cleanup", 0, time.time(), logging.ERROR, "dojobber.cleanup",
               text)
        with self._lock:
            self._logs.append(row)
        self._cleanup_failures += 1

    def run_finished(self, result: RunResult) -> None:
        self._stop_timer()
        self._cleanups_done = True
        if self._capture is not None:
            self._capture.__exit__(None, None, None)
            self._capture = None
        if self.store is None or self.run_id is None:
            return
        counts = result.counts()
        ok, changed = counts[JobStatus.OK], counts[JobStatus.CHANGED]
        failed, blocked = counts[JobStatus.FAILED], counts[JobStatus.BLOCKED]
        outcome = result.outcome.value
        if self._cleanup_failures and outcome == "converged":
            outcome = "not_converged"  # the jobs did, a Cleanup did not
        self.flush(RunEnd(result.finished or time.time(), outcome, ok, changed, failed, blocked))

    def _job_index(self, name: str) -> int:
        """Graph index of a job whose result does not carry it (made by
        hand): its place in the stored graph, else in the run's job list."""
        if self._index is None:
            graph = self._run_graph
            if graph is not None and len(graph) >= len(self._run_jobs):
                self._index = graph.index  # job numbers in the stored graph
            else:
                self._index = {job: i for i, job in enumerate(self._run_jobs)}
        return self._index.get(name, -1)

    # ------------------------------------------------------------------
    def flush(self, end: RunEnd | None = None) -> None:
        """Write what is buffered (and how the run ended) in one transaction,
        through the backend's :class:`~dojobber.records.store.RecordsWriter`
        (under a lock: the flush timer writes too)."""
        with self._lock:
            self._flush(end)

    def _flush(self, end: RunEnd | None) -> None:
        store = self.store
        if store is None or self.run_id is None:
            return
        jobs, self._jobs = self._jobs, []
        logs, self._logs = self._logs, []
        self._due = time.monotonic() + self.flush_interval
        rid = self.run_id
        # One flat list of parameters, seven per job; statuses as plain
        # str (sqlite3 binds a str *subclass* such as JobStatus through its
        # adapter lookup, which costs more than the insert itself).
        rows: list[Any] = []
        add = rows.extend
        text = _STATUS_TEXT
        details: list[tuple[Any, ...]] = []
        for res in jobs:
            phases = res._phases
            i = res.index if res.index >= 0 else self._job_index(res.name)
            if (len(phases) == 1 and res.result is None and res.exception is None
                    and res.plan is None):
                # One phase, nothing else to tell (a Check that passed).
                add((rid, i, res.name, text[res.status], res.tries, phases[0][2], phases[0][3]))
                continue
            add((rid, i, res.name, text[res.status], res.tries,
                 phases[0][2] if phases else None,
                 sum(p[3] for p in phases) if phases else None))
            details.append(
                (rid, i,
                 None if res.result is None else short_repr(res.result),
                 _error_text(res.exception),
                 mask_urls(res.traceback or "") or None if res.exception is not None else None,
                 json.dumps([[p[0], p[1], p[2], p[3], p[4], _error_text(p[5])]
                             for p in phases]),
                 None if res.plan is None else mask_urls(res.plan))
            )
        graph = None if self._graph_linked else self._run_graph
        self._graph_linked = True
        graph_row: GraphRow | None = None
        if graph is not None:
            digest, dummy = _graph_digest(graph)
            graph_row = (digest, graph.root_name, lambda: _graph_json(graph, dummy))
        try:
            store.write_batch(Batch(rid, graph_row, rows, details, logs, end))
        except BaseException:
            # Nothing was written (the transaction rolled back): keep it all
            # for the next flush.
            self._jobs[:0] = jobs
            self._logs[:0] = logs
            self._graph_linked = graph is None and self._graph_linked
            raise
