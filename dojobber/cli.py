"""The ``dojobber`` command line (needs the ``cli`` extra: click and rich).

::

    dojobber run FILE.py:Root [--arg KEY=VALUE ...] [-n] [-v] [-d] [--workers N] [--json]
    dojobber history [ROOT]
    dojobber show RUN [JOB]
    dojobber graph FILE.py:Root -o out.svg | --run RUN -o out.png
    dojobber post FILE.py:Root [--arg KEY=VALUE ...] [--priority N]
    dojobber worker [--concurrency N] [--once]
    dojobber board [ID] / dojobber cancel ID

``python -m dojobber`` is the same.  In a script of your own,
``raise SystemExit(dojobber.main(Root))`` gives the script the options of
``dojobber run`` (without the target).  Exit status: 0 every job converged,
1 some job failed (or was blocked), 2 a usage, definition or records error,
3 another run holds the ``--lock``, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import click
from rich.console import Console

from . import __version__
from ._cli_load import TargetError, load_root, parse_args
from ._cli_show import print_history, print_job, print_run
from .console import PlainProgress, RichProgress, summary_table, summary_text
from .dojobber import DoJobber
from .errors import DojobberError
from .events import Listener
from .graph import build as build_graph
from .job import Job
from .lock import LockHeldError
from .notify import WebhookNotifier, run_summary
from .records import ENV_VAR, RecordsError, RecordsListener, RecordStore, default_path
from .results import RunResult

__all__ = ["EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "EXIT_USAGE", "cli", "entry_point", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


class Failure(click.ClickException):
    """A one-line error; exit status 2."""

    exit_code = EXIT_USAGE


class Locked(Failure):
    """Another run holds the lock; exit status 3."""

    exit_code = EXIT_LOCKED


def _records_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--records",
        "records_path",
        metavar="PATH",
        envvar=ENV_VAR,
        show_envvar=True,
        help="Run records database (default: $XDG_STATE_HOME/dojobber/records.sqlite3).",
    )(func)


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
        _records_option,
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
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dojobber")
def cli() -> None:
    """Converge dojobber job graphs and look at their run records."""


@cli.command("run")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]")
@run_options
def run_command(target: str, **options: Any) -> int:
    """Converge the graph of TARGET: FILE.py:Job or package.module:Job."""
    return _guarded(options["debug"], lambda: _run(load_root(target), target, options))


@cli.command("history")
@click.argument("root", required=False)
@_records_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_command(root: str | None, records_path: str | None, limit: int, as_json: bool) -> int:
    """Recent runs (of ROOT), and whether each graph is converging."""
    with _open_records(records_path) as store:
        print_history(store, root, limit, _stdout(), as_json)
    return EXIT_OK


@cli.command("show", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", metavar="RUN")
@click.argument("job", required=False)
@_records_option
@click.option("--status", type=click.Choice(["ok", "changed", "failed", "blocked"]),
              help="Only jobs with this status.")
@click.option("--all", "show_all", is_flag=True, help="List jobs that were already fine too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(
    run_id: str, job: str | None, records_path: str | None, status: str | None,
    show_all: bool, as_json: bool,
) -> int:
    """A run's jobs, or one JOB's tries, exception and log (RUN: id, -N or last)."""
    with _open_records(records_path) as store:
        try:
            if job is None:
                print_run(store, run_id, _stdout(), as_json, status, show_all)
            else:
                print_job(store, run_id, job, _stdout(), as_json)
        except RecordsError as err:
            raise Failure(f"{err.reason}; {str(err).rsplit('; ', 1)[-1]}") from err
    return EXIT_OK


@cli.command("graph")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]", required=False)
@click.option("--run", "run_id", metavar="RUN", help="Draw a recorded run instead (id, -N, last).")
@_records_option
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Picture file (.png, .svg, .pdf, .dot, .mmd ...; - for stdout).")
@click.option("-f", "--format", "fmt", metavar="FMT", help="Format, if not the extension's.")
@click.option("--focus", metavar="failures|JOB", help="Only failures, or one job's neighbourhood.")
@click.option("--max-nodes", type=click.IntRange(min=1), help="Draw at most this many jobs.")
@click.option("--details", is_flag=True, help="Tries and phase times on each job.")
@click.option("-d", "--debug", is_flag=True, help="Tracebacks of errors.")
def graph_command(
    target: str | None, run_id: str | None, records_path: str | None, output: str,
    fmt: str | None, focus: str | None, max_nodes: int | None, details: bool, debug: bool,
) -> int:
    """Draw the graph of TARGET, or of a recorded run (--run RUN)."""
    from ._cli_graph import write_picture
    from .records import stored_run

    if (target is None) == (run_id is None):
        raise click.UsageError("give either FILE_OR_MODULE[:Job] or --run RUN")

    def draw() -> int:
        result: RunResult | None = None
        if run_id is not None:
            with _open_records(records_path) as store:
                graph, result = stored_run(store, run_id)
        else:
            graph = build_graph(load_root(str(target)))
        write_picture(graph, result, output, fmt, focus=focus, max_nodes=max_nodes,
                      details=details)
        if output != "-":
            sys.stderr.write(f"wrote {output}\n")
        return EXIT_OK

    return _guarded(debug, draw)


# ----------------------------------------------------------------------
def _stdout() -> Console:
    """A rich console on stdout (wide enough for tables when piped)."""
    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, highlight=False, width=None if tty else 120)


def _open_records(path: str | None) -> RecordStore:
    path = path or default_path()
    if not os.path.exists(path):
        raise Failure(
            f"no run records at {path} yet: `dojobber run` records there "
            f"(or pass --records PATH / set {ENV_VAR})"
        )
    try:
        return RecordStore(path)
    except RecordsError as err:
        raise Failure(str(err)) from err


def _guarded(debug: bool, body: Callable[[], int]) -> int:
    """Run ``body``; turn dojobber's errors into one line and exit status 2
    (3 for a held lock), with the traceback first under ``--debug``."""
    try:
        return body()
    except (DojobberError, OSError) as err:
        if debug:
            traceback.print_exc()
        if isinstance(err, LockHeldError):
            raise Locked(str(err)) from err
        raise Failure(str(err)) from err


def _words() -> list[str]:
    """The command-line words being run (for the records; masked there)."""
    obj = click.get_current_context().find_root().obj
    return list(obj["argv"]) if isinstance(obj, dict) else sys.argv[1:]


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
            argv=_words(),
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
            from .cluster import open_executor

            executor = stack.enter_context(open_executor(options["executor_spec"]))
        return _converge(root, options, kwargs, listeners, records, executor, err_stream)


def _converge(
    root: type[Job], options: dict[str, Any], kwargs: dict[str, str],
    listeners: list[Listener], records: RecordsListener | None, executor: Any, err_stream: Any,
) -> int:
    dj = DoJobber()
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
        lock=options["lock_path"],
        lock_timeout=options["lock_timeout"],
    )
    dj.set_args(**kwargs)
    try:
        result = dj.checknrun()
    except KeyboardInterrupt:
        err_stream.write("interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        if records is not None:
            records.close()
    run_id = records.run_id if records is not None else None
    _report(result, run_id, records, options["as_json"])
    if options["graph_path"]:
        from ._cli_graph import write_picture

        try:
            write_picture(dj.jobs, result, options["graph_path"])
            err_stream.write(f"graph drawn in {options['graph_path']}\n")
        except DojobberError as err:  # the run happened: keep its exit status
            err_stream.write(f"Warning: graph not drawn: {err}\n")
    return EXIT_OK if result.success() else EXIT_FAILED


def _report(
    result: RunResult, run_id: int | None, records: RecordsListener | None, as_json: bool
) -> None:
    if as_json:
        data = run_summary(result, run_id)
        data["records"] = records.path if records is not None else None
        data["jobs"] = {
            job.name: {
                "status": job.status.value,
                "tries": job.tries,
                "duration": round(job.duration, 6),
                "result": None if job.result is None else repr(job.result),
                "error": None if job.exception is None
                else f"{type(job.exception).__name__}: {job.exception}",
            }
            for job in result.attempted
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if sys.stdout.isatty():
        _stdout().print(summary_table(result))
    else:
        sys.stdout.write(summary_text(result))
    if records is not None and run_id is not None:
        sys.stderr.write(f"recorded as run {run_id} in {records.path} (dojobber show {run_id})\n")


def _script_command(root: type[Job], prog: str) -> click.Command:
    @click.command(name=prog, context_settings={"help_option_names": ["-h", "--help"]},
                   help=(root.__doc__ or f"Converge {root.__name__}.").strip().splitlines()[0])
    @run_options
    def command(**options: Any) -> int:
        return _guarded(options["debug"], lambda: _run(root, None, options))

    return command


def main(
    target: Sequence[str] | type[Job] | None = None,
    argv: Sequence[str] | None = None,
    *,
    prog_name: str | None = None,
) -> int:
    """Run the command line and return its exit status (never exits).

    ``main()`` / ``main(["run", "jobs.py:Root", "-v"])``: the ``dojobber``
    command with ``sys.argv[1:]`` or the given words.
    ``main(Root)``: a user script's command line for ``Root`` with the
    options of ``dojobber run`` read from ``argv`` (default
    ``sys.argv[1:]``); write ``raise SystemExit(dojobber.main(Root))``.
    """
    if isinstance(target, type):
        words = list(sys.argv[1:] if argv is None else argv)
        prog = prog_name or os.path.basename(sys.argv[0] or root_name(target))
        command = _script_command(target, prog)
    else:
        words = list(sys.argv[1:] if target is None else target)
        prog = prog_name or "dojobber"
        command = cli
    try:
        code = command.main(words, prog_name=prog, standalone_mode=False, obj={"argv": words})
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.Abort:
        sys.stderr.write("aborted\n")
        return EXIT_INTERRUPTED
    except TargetError as err:  # raised before _guarded could see it
        sys.stderr.write(f"Error: {err}\n")
        return EXIT_USAGE
    return int(code) if isinstance(code, int) else EXIT_OK


from ._cli_board import register as _register_board  # noqa: E402

_register_board(cli)


def root_name(root: type[Job]) -> str:
    return root.__name__


def entry_point() -> None:
    """The ``dojobber`` console script."""
    raise SystemExit(main())
