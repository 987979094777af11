"""``dojobber run``: converge a graph from the command line (and the options
that ``dojobber.main(Root)`` gives a script)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, redirect_stdout
from typing import Any

import click
from rich.console import Console

from .._describe import exception_text
from .._postgres import redact_url
from ..backoff import Backoff
from ..console import PlainProgress, RichProgress, summary_table, summary_text
from ..converge import ConvergeResult, Verdict
from ..dojobber import DoJobber
from ..errors import CleanupError, DojobberError
from ..events import Listener
from ..job import Job
from ..loader import load_root, parse_args
from ..notify import WebhookNotifier, run_summary
from ..records import RecordsListener, default_path
from ..results import RunOutcome, RunResult
from ._base import (
    EXIT_CHANGES_PENDING,
    EXIT_CLEANUP,
    EXIT_FAILED,
    EXIT_GAVE_UP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_STOPPED,
    cli,
    command_words,
    guarded,
    records_option,
    stdout_console,
)
from ._rounds import (
    BackoffType,
    DurationType,
    RoundsDisplay,
    agent_loop,
    check_script_reload,
    reload_root,
    rounds_table,
    rounds_text,
)
from .graph import write_picture

__all__ = ["run_command", "run_options", "script_command"]

_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``dojobber run`` (shared with :func:`main` for scripts)."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("-a", "--arg", "args", multiple=True, metavar="KEY=VALUE",
                     help="Keyword argument for every Check and Run (repeatable)."),
        click.option("-n", "--no-act", is_flag=True, help="Only Check; run nothing."),
        click.option("-v", "--verbose", is_flag=True, help="A line per phase of every job."),
        click.option("-d", "--debug", is_flag=True,
                     help="Tracebacks of failures (and of errors of this command)."),
        click.option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Jobs run at the same time (threads)."),
        click.option("--executor", "executor_spec", metavar="SPEC",
                     help="Run attempts on threads:N, processes:N, dask-local:N or "
                          "dask://HOST:PORT (see docs/parallel.rst)."),
        click.option("--tries", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Tries of jobs that set no TRIES."),
        click.option("--retry-delay", type=click.FloatRange(min=0), default=1.0,
                     show_default=True, help="Seconds between tries of jobs without RETRY_DELAY."),
        records_option,
        click.option("--no-records", is_flag=True, help="Do not record this run."),
        click.option("--log-level", type=click.Choice(_LEVELS, case_sensitive=False),
                     default="INFO", show_default=True,
                     help="Lowest level of the jobs' log records that is recorded."),
        click.option("--capture-output", is_flag=True,
                     help="Record what jobs print to stdout/stderr too."),
        click.option("--lock", "lock_path", metavar="PATH",
                     help="Hold this lock file for the run: one run at a time."),
        click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Seconds to wait for another run's lock."),
        click.option("--notify", "notify_urls", multiple=True, metavar="URL",
                     help="POST a JSON summary to this webhook at the end (repeatable)."),
        click.option("--progress/--no-progress", default=None,
                     help="Live progress display [default: when stderr is a terminal]."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the result as JSON on stdout (instead of the summary)."),
        click.option("--graph", "graph_path", metavar="PATH",
                     help="Draw the graph coloured by this run (format from the extension)."),
        click.option("--until-converged", is_flag=True,
                     help="Run again in rounds, with a backoff, until every job holds "
                          "(exit 0 converged, 1 limits ran out, 5 a job gave up)."),
        click.option("--max-rounds", type=click.IntRange(min=1), metavar="N",
                     help="Most rounds [default: 10 without --within]; implies "
                          "--until-converged."),
        click.option("--within", type=DurationType(), metavar="DURATION",
                     help="Start no round after this long (30s, 5m, 1h); implies "
                          "--until-converged."),
        click.option("--backoff", type=BackoffType(), metavar="INITIAL..MAX",
                     help="Wait between rounds, e.g. 5s..10m (doubling) or 30s "
                          "[default: 5s..5m]; implies --until-converged."),
        click.option("--max-stuck-rounds", type=click.IntRange(min=1), metavar="N",
                     help="Stop after N rounds in a row that failed like the one before "
                          "[default: keep going]; implies --until-converged."),
        click.option("--every", type=DurationType(), metavar="DURATION",
                     help="Agent mode: run again every DURATION until SIGTERM "
                          "(SIGHUP reloads the job file)."),
        click.option("--splay", type=DurationType(), default=0.0, metavar="DURATION",
                     help="Agent mode: add up to this much at random to each interval."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command("run")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]")
@run_options
def run_command(target: str, **options: Any) -> int:
    """Converge the graph of TARGET: FILE.py:Job or package.module:Job."""
    options["_target"] = target
    return guarded(options["debug"], lambda: _run(load_root(target), target, options))


def _run(root: type[Job], target: str | None, options: dict[str, Any]) -> int:
    """``dojobber run``; ``target`` is the command's TARGET (None for a
    script's own command line)."""
    kwargs = parse_args(options["args"])
    err_stream = sys.stderr
    listeners: list[Listener] = []
    records: RecordsListener | None = None
    if not options["no_records"]:
        records = RecordsListener(
            options["records_path"] or default_path(),
            log_level=getattr(logging, options["log_level"].upper()),
            capture_output=options["capture_output"],
            script="dojobber" if target is not None else None,
            argv=command_words(),
        )
        records.open()
        listeners.append(records)
    listeners.extend(WebhookNotifier(url, records=records) for url in options["notify_urls"])
    progress = options["progress"]
    if progress is None:
        progress = err_stream.isatty() and not options["verbose"]
    if progress:
        listeners.append(RichProgress(Console(file=err_stream)))
    elif not options["verbose"]:
        listeners.append(PlainProgress(err_stream))
    with ExitStack() as stack:
        executor = None
        if options.get("executor_spec"):
            from ..cluster import open_executor

            executor = stack.enter_context(open_executor(options["executor_spec"]))
        return _converge(root, options, kwargs, listeners, records, executor, err_stream)


def _configure(
    dj: DoJobber, root: type[Job], options: dict[str, Any], listeners: list[Listener],
    executor: Any, agent: bool,
) -> None:
    lock = options["lock_path"]
    if agent and lock is None:  # agent mode: one round at a time, always
        from .._paths import user_state_file

        lock = user_state_file("DOJOBBER_AGENT_LOCK", f"agent-{root.__name__}.lock")
    dj.configure(
        root,
        executor=executor,
        no_act=options["no_act"],
        verbose=options["verbose"],
        debug=options["debug"],
        default_tries=options["tries"],
        default_retry_delay=options["retry_delay"],
        workers=options["workers"],
        listeners=listeners,
        lock=lock,
        lock_timeout=options["lock_timeout"],
    )


def _converge(
    root: type[Job], options: dict[str, Any], kwargs: dict[str, str],
    listeners: list[Listener], records: RecordsListener | None, executor: Any, err_stream: Any,
) -> int:
    dj = DoJobber()
    _configure(dj, root, options, listeners, executor, agent=options["every"] is not None)
    dj.set_args(**kwargs)
    quiet_stdout = stdout_to_stderr() if options["as_json"] else nullcontext()
    cleanup_failures: list[tuple[str, BaseException]] = []
    display = _rounds_display(options, records, err_stream)
    if display is not None:
        dj.add_listener(display)
    try:
        if options["every"] is not None:
            return _agent(dj, root, options, kwargs, listeners, display, executor, err_stream)
        session: ConvergeResult | None = None
        try:
            with _stop_on_sigterm(dj), quiet_stdout:
                if display is not None:
                    session = _session(dj, options)
                    result = session.last
                else:
                    result = dj.checknrun()
        except KeyboardInterrupt:
            err_stream.write("interrupted\n")
            if display is not None and dj.converge_result is not None:
                _report_rounds(dj.converge_result, display, as_json=False)
            if dj.abandoned:  # their threads would hold the interpreter's exit
                if executor is not None:  # (its workers end too: nothing runs on)
                    from ..cluster import stop_workers

                    stop_workers(executor)
                if records is not None:
                    records.close()
                sys.stdout.flush()
                err_stream.flush()
                os._exit(EXIT_STATUS[RunOutcome.INTERRUPTED])
            return EXIT_STATUS[RunOutcome.INTERRUPTED]
        except CleanupError as err:  # the run happened: report it, and the cleanups
            assert dj.result is not None
            result, cleanup_failures = dj.result, err.failures
    finally:
        if records is not None:
            records.close()
    if result is None:  # (a session with no round: stopped before it began)
        return EXIT_INTERRUPTED
    run_id = records.run_id if records is not None else None
    _report(result, run_id, records, options["as_json"], session, display,
            cleanup_failures)
    for job, error in cleanup_failures:
        err_stream.write(f"Cleanup of {job} failed: {exception_text(error)}\n")
    if options["graph_path"]:
        try:
            write_picture(dj.jobs, result, options["graph_path"])
            err_stream.write(f"graph drawn in {options['graph_path']}\n")
        except DojobberError as err:  # the run happened: keep its exit status
            err_stream.write(f"Warning: graph not drawn: {err}\n")
    if session is not None:
        return _SESSION_EXIT[session.verdict]
    if cleanup_failures and result.outcome is RunOutcome.CONVERGED:
        return EXIT_CLEANUP
    return EXIT_STATUS[result.outcome]



@contextmanager
def _stop_on_sigterm(dj: DoJobber) -> Iterator[None]:
    """While the run goes on, SIGTERM stops it after the attempts running
    now (:meth:`DoJobber.stop`): cleanups run, the records say ``stopped``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: dj.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Exit status of ``--until-converged`` per verdict.
_SESSION_EXIT = {
    Verdict.CONVERGED: EXIT_OK,
    Verdict.EXHAUSTED: EXIT_FAILED,
    Verdict.GAVE_UP: EXIT_GAVE_UP,
    Verdict.INTERRUPTED: EXIT_STOPPED,  # (stopped by SIGTERM; Ctrl-C: 130)
    Verdict.CHANGES_PENDING: EXIT_CHANGES_PENDING,
}


def _until_converged(options: dict[str, Any]) -> bool:
    return bool(options["until_converged"]) or any(
        options[name] is not None
        for name in ("max_rounds", "within", "backoff", "max_stuck_rounds")
    )


def _rounds_display(
    options: dict[str, Any], records: RecordsListener | None, err_stream: Any
) -> RoundsDisplay | None:
    """The display of rounds, when the command runs them."""
    if not _until_converged(options):
        return None
    tty = err_stream.isatty() and options["progress"] is not False
    return RoundsDisplay(
        err_stream, Console(file=err_stream) if tty else None,
        (lambda: records.run_id) if records is not None else None,
    )


def _session(dj: DoJobber, options: dict[str, Any]) -> ConvergeResult:
    backoff: Backoff | None = options["backoff"]
    return dj.converge(
        max_rounds=options["max_rounds"], within=options["within"], backoff=backoff,
        max_stuck_rounds=options["max_stuck_rounds"],
    )


def _agent(
    dj: DoJobber, root: type[Job], options: dict[str, Any], kwargs: dict[str, str],
    listeners: list[Listener], display: RoundsDisplay | None, executor: Any, err_stream: Any,
) -> int:
    """``--every``: converge again every interval until SIGTERM."""
    target = options.get("_target")

    def one_round(dj: DoJobber) -> tuple[int, str]:
        if display is not None:
            session = _session(dj, options)
            return _SESSION_EXIT[session.verdict], session.summary()
        result = dj.checknrun()
        return EXIT_STATUS[result.outcome], result.summary()

    def reconfigure() -> DoJobber:
        assert target is not None
        new_root = reload_root(target, dj.jobs.root)
        fresh = DoJobber()
        _configure(fresh, new_root, options, listeners, executor, agent=True)
        fresh.set_args(**kwargs)
        if display is not None:
            fresh.add_listener(display)
        return fresh

    return agent_loop(
        dj, one_round, options["every"], options["splay"], err_stream,
        reconfigure if target is not None else check_script_reload,
    )


def _report_rounds(session: ConvergeResult, display: RoundsDisplay, as_json: bool) -> None:
    if as_json:
        return
    if sys.stdout.isatty():
        stdout_console().print(rounds_table(session, display.ids))
    else:
        sys.stdout.write(rounds_text(session, display.ids))


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever the run prints to stderr, so that stdout carries only
    ``--json``'s document: Python's ``sys.stdout`` (every thread) and file
    descriptor 1 (programs the jobs start)."""
    sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
    except OSError:  # no file descriptor 1
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _report(
    result: RunResult, run_id: int | None, records: RecordsListener | None, as_json: bool,
    session: ConvergeResult | None = None, display: RoundsDisplay | None = None,
    cleanup_failures: list[tuple[str, BaseException]] | None = None,
) -> None:
    if as_json:
        data = run_summary(result, run_id)
        data["records"] = redact_url(records.path) if records is not None else None
        data["cleanup_failed"] = [
            {"job": job, "error": exception_text(error)} for job, error in cleanup_failures or ()
        ]
        if cleanup_failures and data["outcome"] == RunOutcome.CONVERGED.value:
            data["outcome"] = RunOutcome.NOT_CONVERGED.value  # as the records say
        data["jobs"] = {
            job.name: {
                "status": job.status.value,
                "tries": job.tries,
                "duration": round(job.duration, 6),
                "result": None if job.result is None else repr(job.result),
                "error": None if job.exception is None
                else exception_text(job.exception),
                "plan": job.plan,
            }
            for job in result.attempted
        }
        if session is not None:
            data["converge"] = _session_json(session, display.ids if display else [])
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        if session is not None and display is not None:
            _report_rounds(session, display, as_json)
        if sys.stdout.isatty():
            stdout_console().print(summary_table(result))
        else:
            sys.stdout.write(summary_text(result))
    if records is not None and run_id is not None:
        where = redact_url(records.path)
        sys.stderr.write(f"recorded as run {run_id} in {where} (dojobber show {run_id})\n")


def _session_json(session: ConvergeResult, ids: list[int | None]) -> dict[str, Any]:
    return {
        "session": session.session,
        "verdict": session.verdict.value,
        "reason": session.reason,
        "duration": round(session.duration, 6),
        "rounds": [
            {
                "round": n,
                "run_id": ids[n - 1] if n <= len(ids) else None,
                "converged": run.success(),
                "counts": {s.value: c for s, c in run.counts().items()},
                "duration": round(run.duration, 6),
                "then_waited": session.waits[n - 1] if n <= len(session.waits) else None,
            }
            for n, run in enumerate(session.rounds, 1)
        ],
    }


def script_command(root: type[Job], prog: str) -> click.Command:
    @click.command(name=prog, context_settings={"help_option_names": ["-h", "--help"]},
                   help=(root.__doc__ or f"Converge {root.__name__}.").strip().splitlines()[0])
    @run_options
    def command(**options: Any) -> int:
        return guarded(options["debug"], lambda: _run(root, None, options))

    return command


