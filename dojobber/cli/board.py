"""``dojobber post | worker | board | cancel``: the run queue on the command line."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from ..backoff import Backoff
from ..board import Board, BoardError, Request, open_board
from ..board.worker import Carried, WorkerOptions, WorkerSetupError, run_worker
from ..loader import absolute_target, load_root, parse_args
from ..records import ENV_VAR as RECORDS_ENV
from ..records import default_path as default_records
from ._base import Failure, board_option, cli
from ._rounds import BackoffType

__all__ = ["board_command", "cancel_command", "post_command", "worker_command"]


@contextmanager
def _opened(path: str | None) -> Iterator[Board]:
    """The board at ``path``, closed after the command (``main()`` called in
    a long-lived process must not leave connections open)."""
    try:
        board = open_board(path)
    except BoardError as err:
        raise Failure(str(err)) from err
    try:
        yield board
    finally:
        board.close()


def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _state(req: Request) -> str:
    if req.state == "claimed":
        extra = " (cancelling)" if req.cancel_requested else ""
        return f"claimed by {req.claimed_by} since {_when(req.claimed_at)}{extra}"
    if req.state == "waiting" and req.attempts:
        due = _when(req.not_before)
        return f"waiting (retry {req.attempts + 1}/{req.max_attempts} after {due})"
    return req.state


@cli.command("post")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]")
@click.option("-a", "--arg", "args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for every Check and Run (repeatable).")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Higher runs first.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs until it converges, at most this many.")
@click.option("--retry-delay", type=BackoffType(), default="60", show_default=True,
              metavar="DELAY|INITIAL..MAX",
              help="Wait between two runs of a failed request: seconds or a duration "
                   "(60, 5m), or a growing backoff (1m..1h).")
@board_option
def post_command(target: str, args: tuple[str, ...], priority: int, max_attempts: int,
                 retry_delay: Backoff, board_path: str | None) -> int:
    """Queue a run of TARGET for a worker; print the request's id."""
    kwargs = parse_args(args)
    load_root(target)  # refuse what a worker could not run, now
    try:
        with _opened(board_path) as board:
            posted = board.post(
                absolute_target(target), (), kwargs, priority=priority,
                max_attempts=max_attempts, retry_delay=retry_delay)
    except BoardError as err:
        raise Failure(str(err)) from err
    if posted.duplicate:
        click.echo(f"{posted.id} (an identical request is already waiting: not queued twice)")
    else:
        click.echo(str(posted.id))
    return 0

@cli.command("worker")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=1,
              show_default=True, help="Requests carried out at the same time.")
@click.option("--once", is_flag=True,
              help="Exit when nothing is due (status 1 if a request failed).")
@click.option("--lease", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds a claim lasts without a heartbeat.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Longest wait between looks at an empty board (a PostgreSQL board"
              " wakes its workers at once when a request is posted).")
@click.option("--records", "records_path", metavar="PATH", envvar=RECORDS_ENV,
              show_envvar=True, help="Run records database (default: the per-user one).")
@click.option("--no-records", is_flag=True, help="Do not record the runs.")
@click.option("--lock", metavar="PATH",
              help="Lock file per run; {root} is replaced by the root job's name.")
@board_option
def worker_command(concurrency: int, once: bool, lease: float, poll: float,
                   records_path: str | None, no_records: bool, lock: str | None,
                   board_path: str | None) -> int:
    """Claim posted requests and converge them, until stopped (Ctrl-C, SIGTERM).

    One line per request on stderr: id, target, state, outcome, run id.
    Exit status: 0; 2 when the worker's own options cannot work (nothing is
    claimed); with --once, 1 when a request it carried out failed (or waits
    for a retry); 130 on Ctrl-C."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = WorkerOptions(
        concurrency=concurrency, once=once, lease=lease, poll=poll,
        records=None if no_records else (records_path or str(default_records())),
        lock=lock,
    )
    failed: list[int] = []

    def done(carried: Carried) -> None:
        req = carried.request
        run = f" (run {carried.run_id})" if carried.run_id else ""
        state = carried.state or "claim lost"
        sys.stderr.write(f"request {req.id} {req.target}: {state}: {carried.outcome}{run}\n")
        if carried.state in ("failed", "waiting"):
            failed.append(req.id)

    try:
        with _opened(board_path) as board:
            count = run_worker(board, options, stop, on_done=done)
    except WorkerSetupError as err:
        raise Failure(str(err)) from None
    except BoardError as err:  # the board stayed away longer than its retries
        raise Failure(f"worker stopped: {err}") from err
    except KeyboardInterrupt:
        sys.stderr.write("worker stopped\n")
        return 130
    sys.stderr.write(f"worker done: {count} request(s) carried out"
                     + (f", {len(failed)} failed" if failed else "") + "\n")
    return 1 if once and failed else 0

@cli.command("board")
@click.argument("request_id", metavar="[ID]", type=int, required=False)
@click.option("--state", "states", multiple=True,
              type=click.Choice(["waiting", "claimed", "done", "failed", "cancelled"]),
              help="Only requests in this state (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@board_option
def board_command(request_id: int | None, states: tuple[str, ...], limit: int,
                  as_json: bool, board_path: str | None) -> int:
    """List requests and their state, or show request ID with its runs."""
    try:
        with _opened(board_path) as board:
            requests = [board.get(request_id)] if request_id is not None else \
                board.requests(list(states) or None, limit)
    except BoardError as err:
        raise Failure(str(err)) from err
    if as_json:
        click.echo(json.dumps([asdict(r) for r in requests], indent=2))
        return 0
    console = Console(file=sys.stdout, highlight=False,
                      width=None if sys.stdout.isatty() else 120)
    table = Table("ID", "TARGET", "PRI", "STATE", "TRIES", "OUTCOME", "RUNS")
    for req in requests:
        table.add_row(str(req.id), req.target, str(req.priority), _state(req),
                      f"{req.attempts}/{req.max_attempts}", req.outcome or "",
                      " ".join(req.runs))
    console.print(table)
    if request_id is not None and requests[0].runs:
        console.print(f"see a run with: dojobber show {requests[0].runs[-1]}")
    return 0

@cli.command("cancel")
@click.argument("request_id", metavar="ID", type=int)
@board_option
def cancel_command(request_id: int, board_path: str | None) -> int:
    """Cancel request ID: at once if waiting, after its current job if claimed."""
    try:
        with _opened(board_path) as board:
            state = board.cancel(request_id)
    except BoardError as err:
        raise Failure(str(err)) from err
    if state == "cancelled":
        click.echo(f"{request_id} cancelled")
    elif state == "claimed":
        click.echo(f"{request_id} will stop after the jobs its worker is running now")
    else:
        click.echo(f"{request_id} is already {state}; nothing to cancel")
    return 0
