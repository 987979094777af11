"""The :class:`DoJobber` facade: the upstream-compatible API over the engine."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import sys
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import _timeout
from . import graph as _graph
from .backoff import Backoff
from .console import ConsoleListener
from .converge import ConvergeResult, converge
from .engine import Engine
from .errors import CleanupError, ConfigurationError, JobTimeoutError, NotConfiguredError
from .events import EventBus, Listener
from .job import Job
from .results import JobResult, RunResult

if TYPE_CHECKING:
    import networkx

    from .lock import RunLock
    from .records import RecordsListener

__all__ = ["DoJobber"]

log = logging.getLogger("dojobber")


class DoJobber:
    """Converges a graph of jobs: configure a root, then ``checknrun()``.

    After a run, ``nodestatus`` maps each job name that was part of it to
    True (succeeded), False (failed) or None (blocked by a failed
    dependency); ``nodeexceptions`` holds the exception of each failed job
    and ``noderesults`` the Check result of each job that succeeded.
    :attr:`result` has the full :class:`~dojobber.RunResult`.
    """

    def __init__(self, dojobber_loglevel: int | str | None = None, **_: Any) -> None:
        if dojobber_loglevel is not None:
            log.setLevel(dojobber_loglevel)
        self.nodestatus: dict[str, bool | None] = {}
        self.nodeexceptions: dict[str, BaseException] = {}
        self.noderesults: dict[str, Any] = {}
        #: The result of the last ``checknrun()``, or None before one.
        self.result: RunResult | None = None
        self._graph: _graph.JobGraph | None = None
        self._args: tuple[Any, ...] = ()
        self._kwargs: dict[str, Any] = {}
        self._instances: list[Job] = []
        self._bus = EventBus()
        self._no_act = False
        self._cleanup = True
        self._workers = 1
        self._executor: cf.Executor | None = None
        self._cwd: str | None = None
        self._engine: Engine | None = None
        self._stop_requested = False
        #: The records listener of ``configure(records=...)`` (its ``run_id``
        #: is the last run's id in the database), or None.
        self.records: RecordsListener | None = None
        #: Jobs whose attempts a second Ctrl-C abandoned still running (their
        #: Cleanup was not run); empty otherwise.
        self.abandoned: list[str] = []
        self._lock: RunLock | None = None
        #: The result of the last :meth:`converge` (kept after Ctrl-C too).
        self.converge_result: ConvergeResult | None = None
        # Set by stop() / stop_after_round(): wakes converge() from its wait.
        self._wake = threading.Event()
        self._converging = False
        self._after_round = False

    # ------------------------------------------------------------------
    def configure(
        self,
        root: type[Job],
        no_act: bool = False,
        verbose: bool = False,
        debug: bool = False,
        cleanup: bool = True,
        default_tries: int = 3,
        default_retry_delay: float | Backoff = 1,
        *,
        workers: int = 1,
        executor: cf.Executor | None = None,
        listeners: Iterable[Listener] = (),
        records: str | os.PathLike[str] | bool | None = None,
        lock: str | os.PathLike[str] | None = None,
        lock_timeout: float | None = 0.0,
        default_timeout: float | None = None,
    ) -> None:
        """Build and validate the graph below ``root``.

        no_act: only the first Check of each job; nothing is Run.
        verbose / debug: per-phase lines (and tracebacks) on stderr.
        cleanup: call each job instance's ``Cleanup()`` after ``checknrun``;
        with False, call :meth:`cleanup` yourself.
        default_tries / default_retry_delay: for jobs that set no ``TRIES`` /
        ``RETRY_DELAY`` (a delay may be a :class:`~dojobber.Backoff`).
        workers: attempts running at the same time (threads).
        executor: run attempts on this :class:`concurrent.futures.Executor`.
        listeners: :class:`~dojobber.Listener` objects told of every event.
        records: write each run into this SQLite file (True: the default
        location, see :func:`dojobber.records.default_path`); the file is
        opened now, so a bad path fails here with
        :class:`~dojobber.records.RecordsError`.
        lock / lock_timeout: hold an exclusive lock on this file during each
        ``checknrun()``; when another run holds it, wait up to
        ``lock_timeout`` seconds (None: for ever), then raise
        :class:`~dojobber.lock.LockHeldError` naming the holder.

        default_timeout: the ``TIMEOUT`` of jobs that set none (seconds one
        attempt may take; None: no limit).  See ``docs/converge.rst``.

        Raises a :class:`~dojobber.errors.DefinitionError` naming the job at
        fault when the graph is not valid.
        """
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError("workers", workers, "give a whole number >= 1")
        if executor is not None and not isinstance(executor, cf.Executor):
            raise ConfigurationError(
                "executor", executor, "give a concurrent.futures.Executor (or None)"
            )
        listeners = list(listeners)
        for listener in listeners:
            if not isinstance(listener, Listener):
                raise ConfigurationError(
                    "listeners", listener, "each listener must subclass dojobber.Listener"
                )
        graph = _graph.build(root, default_tries, default_retry_delay, default_timeout)
        self._wire_records_and_lock(graph, listeners, records, lock, lock_timeout)
        self._graph = graph
        self._no_act = no_act
        self._cleanup = cleanup
        self._workers = workers
        self._executor = executor
        if verbose or debug:
            listeners.insert(0, ConsoleListener(debug=debug))
        self._bus = EventBus(listeners)
        self.result = None

    def _wire_records_and_lock(
        self,
        graph: _graph.JobGraph,
        listeners: list[Listener],
        records: str | os.PathLike[str] | bool | None,
        lock: str | os.PathLike[str] | None,
        lock_timeout: float | None,
    ) -> None:
        """configure()'s ``records`` and ``lock`` options (checked before
        anything of the previous configuration is replaced)."""
        run_lock: RunLock | None = None
        if lock is not None:
            from .lock import RunLock

            if lock_timeout is not None and (
                isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float))
                or lock_timeout < 0
            ):
                raise ConfigurationError(
                    "lock_timeout", lock_timeout, "give seconds >= 0, or None to wait for ever"
                )
            run_lock = RunLock(lock, timeout=lock_timeout, root=graph.root_name)
        recorder: RecordsListener | None = None
        if records is not None and records is not False:
            from .records import RecordsListener

            recorder = RecordsListener(None if records is True else records)
            recorder.open()  # RecordsError now rather than at the run
            listeners.append(recorder)
        if "dojobber.records" in sys.modules:
            from .records import RecordsListener

            for listener in listeners:
                if isinstance(listener, RecordsListener):
                    listener.graph = graph  # stored with each run, for pictures
        if self.records is not None:
            self.records.close()  # the previous configure()'s database
        self.records = recorder
        self._lock = run_lock

    def set_args(self, *args: Any, **kwargs: Any) -> None:
        """Arguments passed to every ``Check`` and ``Run``."""
        self._args = args
        self._kwargs = kwargs

    def add_listener(self, listener: Listener) -> None:
        """Tell ``listener`` of the events of the next runs too."""
        self._bus.add(listener)

    # ------------------------------------------------------------------
    def checknrun(self, node: type[Job] | str | None = None) -> RunResult:
        """Converge the root (or ``node`` and what it depends on).

        Returns the :class:`~dojobber.RunResult` (also kept in
        :attr:`result`).  On Ctrl-C, scheduling stops, cleanups run, and the
        KeyboardInterrupt goes on.  With ``configure(lock=...)`` the run
        holds the lock throughout (or raises
        :class:`~dojobber.lock.LockHeldError`).
        """
        if self._lock is None:
            return self._checknrun(node)
        with self._lock:
            return self._checknrun(node)

    def _checknrun(self, node: type[Job] | str | None) -> RunResult:
        graph = self._require_graph("checknrun")
        target = len(graph) - 1 if node is None else graph.lookup(node)
        cwd = os.path.realpath(os.curdir)
        self._cwd = cwd
        engine = Engine(
            graph,
            args=self._args,
            kwargs=self._kwargs,
            no_act=self._no_act,
            bus=self._bus,
            workers=self._workers,
            executor=self._executor,
            cwd=cwd,
        )
        self._instances = engine.instances
        self._engine = engine
        self.abandoned = []
        engine.stopping = self._stop_requested
        try:
            engine.run(target)
        except KeyboardInterrupt:
            self._settle(engine, cwd)
            running = {engine.graph.classes[i] for i in engine.abandoned}
            self.abandoned = sorted(cls.__name__ for cls in running)
            if running:  # never a Cleanup while its job's attempt may run
                self._instances = [o for o in self._instances if type(o) not in running]
            if self._cleanup:
                try:
                    self.cleanup()
                except CleanupError as err:
                    log.error("%s (during Ctrl-C)", err)
            self._bus.emit("run_finished", engine.result)
            raise
        self._settle(engine, cwd)
        try:
            if self._cleanup:
                self.cleanup()
        finally:
            self._bus.emit("run_finished", engine.result)
        return engine.result

    def converge(
        self,
        node: type[Job] | str | None = None,
        *,
        max_rounds: int | None = None,
        within: float | timedelta | str | None = None,
        backoff: Backoff | float | str | None = None,
        max_stuck_rounds: int | None = None,
    ) -> ConvergeResult:
        """Run :meth:`checknrun` in rounds until the graph converges.

        max_rounds: most rounds (default 10 when ``within`` is not given
        either; None with ``within``: no limit).
        within: a deadline, in seconds, a :class:`~datetime.timedelta` or
        text such as ``"5m"``; no round starts after it.
        backoff: the wait between rounds, a :class:`~dojobber.Backoff` or
        seconds (default: 5 s doubling to 5 min, +-10%).
        max_stuck_rounds: stop after this many rounds in a row that failed
        the same way (default: keep going, waiting longer each time).

        Returns a :class:`~dojobber.converge.ConvergeResult` with each
        round's :class:`~dojobber.RunResult` and the verdict (``converged``,
        ``exhausted``, ``gave_up``, ``interrupted``); also kept in
        :attr:`converge_result`, while :attr:`result` and the node dicts
        hold the last round.  See :mod:`dojobber.converge` for the rules.
        """
        return converge(
            self, node, max_rounds=max_rounds, within=within, backoff=backoff,
            max_stuck_rounds=max_stuck_rounds,
        )

    def stop_after_round(self) -> None:
        """Let the running round of :meth:`converge` finish, then end the
        session (verdict ``interrupted``); a session waiting between rounds
        ends at once.  Safe from any thread or a signal handler."""
        self._after_round = True
        self._wake.set()

    def stop(self) -> None:
        """Stop the running ``checknrun()`` after the attempts running now.

        Safe to call from any thread (a listener, a signal handler, a
        heartbeat).  Jobs not reached stay PENDING; the result says
        ``stopped`` and, unless the target had passed already, its
        ``outcome`` is STOPPED and ``success()`` False.  Called before a run, it
        stops the next one at once.
        """
        self._stop_requested = True
        self._wake.set()  # a converge() waiting between rounds ends
        engine = self._engine
        if engine is not None:
            engine.stopping = True

    def _settle(self, engine: Engine, cwd: str) -> None:
        self._engine = None
        self._stop_requested = False
        os.chdir(cwd)
        result = engine.result
        self.result = result
        self.nodestatus, self.nodeexceptions, self.noderesults = result.upstream_dicts()

    def cleanup(self) -> None:
        """Call ``Cleanup()`` of every job instance made, last made first.

        Each instance is cleaned up once.  Every Cleanup runs even when one
        raises; then :class:`~dojobber.errors.CleanupError` lists the ones
        that failed.
        """
        instances, self._instances = self._instances, []
        failures: list[tuple[str, BaseException]] = []
        bus = self._bus
        while instances:
            obj = instances.pop()
            method = getattr(obj, "Cleanup", None)
            if not callable(method):
                continue
            name = type(obj).__name__
            if _timeout.abandoned(type(obj)):  # its timed-out attempt still runs
                self._skip_cleanup(obj)
                continue
            try:
                method()
            except (Exception, SystemExit) as err:  # (sys.exit() in a Cleanup too)
                failures.append((name, err))
                bus.emit("cleanup_finished", name, False, err)
            else:
                if bus:
                    bus.emit("cleanup_finished", name, True, None)
        if self._cwd is not None:
            os.chdir(self._cwd)
        if failures:
            raise CleanupError(failures) from failures[0][1]

    def _skip_cleanup(self, obj: Job) -> None:
        """Leave out the ``Cleanup()`` of an instance whose job's timed-out
        attempt still runs (it may still be using what Cleanup would undo),
        and say so: a warning and a failed ``cleanup_finished``."""
        name = type(obj).__name__
        timeouts = self._graph.timeouts if self._graph is not None else None
        i = self._graph.index.get(name) if self._graph is not None else None
        timeout = timeouts[i] if timeouts is not None and i is not None else None
        err = JobTimeoutError(name, timeout or 0.0, still_running=True, doing="cleaned up")
        log.warning("%s", err)
        self._bus.emit("cleanup_finished", name, False, err)

    # ------------------------------------------------------------------
    def success(self) -> bool:
        """The last run converged (its :attr:`~RunResult.outcome` is
        CONVERGED): every job of it succeeded."""
        return self.result is not None and self.result.success()

    def partial_success(self) -> bool:
        """At least one job of the last run succeeded."""
        return bool(self.nodestatus) and any(self.nodestatus.values())

    def failure(self) -> bool:
        """Not every job of the last run succeeded."""
        return not self.success()

    @property
    def jobs(self) -> _graph.JobGraph:
        """The configured :class:`~dojobber.graph.JobGraph`."""
        return self._require_graph("jobs")

    @property
    def graph(self) -> networkx.DiGraph:
        """The configured graph as a networkx DiGraph (edges job -> dependency)."""
        return self._require_graph("graph").nx

    @property
    def results(self) -> dict[str, JobResult]:
        """Typed per-job results of the last run (empty before one)."""
        return dict(self.result.jobs) if self.result is not None else {}

    def _require_graph(self, what: str) -> _graph.JobGraph:
        if self._graph is None:
            raise NotConfiguredError(what)
        return self._graph

    # -- Graph pictures (dojobber.render; graphviz is imported only here) --
    def _repr_html_(self) -> str | None:
        """In Jupyter: the graph (coloured by the last run, if any) and a
        compact table; nothing before ``configure()``."""
        if self._graph is None:
            return None
        from .render.notebook import html_table, notebook_svg

        svg, why = notebook_svg(self._graph, self.result)
        return html_table(self._graph, self.result, svg, why)

    def write_graph(self, fd: Any, fmt: str = "png", **options: Any) -> None:
        """Write a picture of the graph to the open file ``fd``.

        The picture is coloured by the last run (the plain structure before
        any run).  ``fmt`` is any format of Graphviz's ``dot`` program
        (``png``, ``svg``, ``pdf``, ...) or ``dot`` / ``mermaid`` text, which
        needs no program.  ``options`` go to :func:`dojobber.render.render`
        (``focus``, ``max_nodes``, ``details``, ``legend``).  Text formats
        may go to a text file; images need a binary one (``open(p, "wb")``).
        Raises a :class:`~dojobber.render.RenderError` subclass saying what
        to install when Graphviz is missing.
        """
        import io

        from .render import TEXT_FORMATS, render

        data = render(self._require_graph("write_graph"), self.result, fmt, **options)
        if isinstance(fd, io.TextIOBase):
            if fmt.strip().lower().lstrip(".") not in TEXT_FORMATS:
                raise TypeError(
                    f"write_graph(fmt={fmt!r}) writes binary data; open the file in "
                    "binary mode, e.g. open('graph.png', 'wb')"
                )
            fd.write(data.decode())
        else:
            fd.write(data)

    def display_graph(self, **options: Any) -> None:
        """Show a PNG picture of the graph in the desktop's image viewer.

        ``options`` as for :meth:`write_graph`.  Like upstream, it does
        nothing where no picture can be shown (no display, no viewer, no
        Graphviz); it logs why as a warning on the ``dojobber`` logger, so a
        script run from cron still finishes normally.
        """
        import tempfile

        from .render import RenderError, open_image, render, viewer_command

        graph = self._require_graph("display_graph")
        try:
            viewer_command()  # no display or viewer: say so before drawing
            data = render(graph, self.result, "png", **options)
            with tempfile.NamedTemporaryFile(
                prefix="dojobber-graph-", suffix=".png", delete=False
            ) as out:
                out.write(data)
            open_image(out.name)
        except RenderError as err:
            log.warning("display_graph() shows nothing: %s", err)
