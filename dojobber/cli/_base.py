"""What every ``dojobber`` command shares: the click group, exit codes,
the one-line :class:`Failure`, the console, and opening the records."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from .._postgres import is_postgres_url
from .._version import __version__
from ..board import ENV_VAR as BOARD_ENV
from ..errors import DojobberError
from ..lock import LockHeldError
from ..records import ENV_VAR, RecordsError, RecordStore, Store, default_path, open_store
from ..results import RunOutcome

__all__ = [
    "EXIT_CHANGES_PENDING",
    "EXIT_CLEANUP",
    "EXIT_FAILED",
    "EXIT_GAVE_UP",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "Failure",
    "Locked",
    "board_option",
    "cli",
    "command_words",
    "guarded",
    "open_records",
    "records_option",
    "stdout_console",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
#: ``dojobber run -n`` (check mode): some jobs would run; nothing failed.
EXIT_CHANGES_PENDING = 7

#: The exit status of ``dojobber run`` for each run outcome (every
#: :class:`RunOutcome` has one).
EXIT_STATUS: dict[RunOutcome, int] = {
    RunOutcome.CONVERGED: EXIT_OK,
    RunOutcome.NOT_CONVERGED: EXIT_FAILED,
    RunOutcome.STOPPED: EXIT_STOPPED,
    RunOutcome.INTERRUPTED: EXIT_INTERRUPTED,
    RunOutcome.CHANGES_PENDING: EXIT_CHANGES_PENDING,
}
#: ``--until-converged``: a job raised dojobber.GiveUp (a person must act).
EXIT_GAVE_UP = 5
#: Every job converged, but a ``Cleanup()`` raised (the records say
#: ``not_converged``, with the failure as an ERROR line of the cleanup phase).
EXIT_CLEANUP = 6


class Failure(click.ClickException):
    """A one-line error; exit status 2."""

    exit_code = EXIT_USAGE


class Locked(Failure):
    """Another run holds the lock; exit status 3."""

    exit_code = EXIT_LOCKED


def records_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--records",
        "records_path",
        metavar="PATH|URL",
        envvar=ENV_VAR,
        show_envvar=True,
        help="Run records database: a file, or a postgresql://user@host/db URL shared by"
        " several hosts (default: $XDG_STATE_HOME/dojobber/records.sqlite3).",
    )(func)


def board_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--board", "board_path", metavar="PATH|URL", envvar=BOARD_ENV, show_envvar=True,
        help="Board file, or a postgresql://user@host/db URL for workers on several hosts"
        " (default: $XDG_STATE_HOME/dojobber/board.sqlite3).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dojobber")
def cli() -> None:
    """Converge dojobber job graphs and look at their run records."""


def stdout_console() -> Console:
    """A rich console on stdout: the terminal's width, or when piped
    ``$COLUMNS`` if set, else 120 (wide enough for tables)."""
    width = None
    if not sys.stdout.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else 120
    return Console(file=sys.stdout, highlight=False, width=width)


def open_records(path: str | None) -> Store:
    path = path or default_path()
    if is_postgres_url(path):
        try:
            return open_store(path)
        except RecordsError as err:
            raise Failure(str(err)) from err
    if not os.path.exists(path):
        raise Failure(
            f"no run records at {path} yet: `dojobber run` records there "
            f"(or pass --records PATH / set {ENV_VAR})"
        )
    try:
        return RecordStore(path)
    except RecordsError as err:
        raise Failure(str(err)) from err


def guarded(debug: bool, body: Callable[[], int]) -> int:
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


def command_words() -> list[str]:
    """The command-line words being run (for the records; masked there)."""
    obj = click.get_current_context().find_root().obj
    return list(obj["argv"]) if isinstance(obj, dict) else sys.argv[1:]


