"""The ``dojobber`` command line (needs the ``cli`` extra: click and rich).

::

    dojobber run FILE.py:Root [--arg KEY=VALUE ...] [-n] [-v] [-d] [--workers N] [--json]
    dojobber history [ROOT]
    dojobber show RUN [JOB]
    dojobber graph FILE.py:Root -o out.svg | --run RUN -o out.png
    dojobber list FILE.py:Root
    dojobber post FILE.py:Root [--arg KEY=VALUE ...] [--priority N]
    dojobber worker [--concurrency N] [--once]
    dojobber board [ID] / dojobber cancel ID
    dojobber serve [--records PATH] [--board PATH] [--host H] [--port N] [--read-only]

``python -m dojobber`` is the same.  In a script of your own,
``raise SystemExit(dojobber.main(Root))`` gives the script the options of
``dojobber run`` (without the target).  Exit status, from the run's
:class:`~dojobber.RunOutcome`: 0 converged, 1 not converged (some job failed
or was blocked; with ``-n``: some job could not be checked), 7 changes
pending (``-n``: some jobs would run, none failed), 4 stopped (SIGTERM)
before the end, 130 interrupted (Ctrl-C); and 2 a usage, definition or
records error, 3 another run holds the ``--lock``, 5 a job gave up
(``--until-converged``), 6 every job converged but a ``Cleanup()`` raised.
A job that calls ``sys.exit(N)`` fails (no retry); it never sets the exit
status.

One module per command family: :mod:`.run`, :mod:`.records` (history,
show), :mod:`.graph`, :mod:`.jobs` (list), :mod:`.board` (post, worker, board,
cancel), :mod:`.serve` (the web view); what
they share is in :mod:`._base`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from ..job import Job
from ..loader import TargetError
from . import board, graph, jobs, records, run, serve
from ._base import (
    EXIT_CHANGES_PENDING,
    EXIT_CLEANUP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_STOPPED,
    EXIT_USAGE,
    cli,
)
from ._rounds import CHECK_SCRIPT_ENV, RestartRequested, restart
from .run import script_command

__all__ = [
    "EXIT_CHANGES_PENDING",
    "EXIT_CLEANUP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "cli",
    "entry_point",
    "main",
]

#: The command families, each registered on :data:`cli` when imported.
COMMANDS = (run, records, graph, board, serve, jobs)


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
        if os.environ.get(CHECK_SCRIPT_ENV):  # an agent checks the script before a restart
            return _check_script(target)
        words = list(sys.argv[1:] if argv is None else argv)
        prog = prog_name or os.path.basename(sys.argv[0] or target.__name__)
        command = script_command(target, prog)
    else:
        words = list(sys.argv[1:] if target is None else target)
        prog = prog_name or "dojobber"
        command = cli
    try:
        code = command.main(words, prog_name=prog, standalone_mode=False, obj={"argv": words})
    except RestartRequested as restart_now:  # SIGHUP in a script's agent; all is closed
        restart(restart_now.argv)
        raise  # (not reached)
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



def _check_script(root: type[Job]) -> int:
    """The script as it is now: does its graph build?  (In the child an
    agent starts on SIGHUP before it restarts the script.)"""
    from ..dojobber import DoJobber
    from ..errors import DojobberError

    try:
        DoJobber().configure(root)
    except DojobberError as err:
        sys.stderr.write(f"Error: {err}\n")
        return EXIT_USAGE
    return EXIT_OK


def entry_point() -> None:
    """The ``dojobber`` console script."""
    raise SystemExit(main())
