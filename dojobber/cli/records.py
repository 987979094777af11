"""``dojobber history`` and ``dojobber show``: reading the run records."""

from __future__ import annotations

import click

from ..records import RecordsError
from ._base import EXIT_OK, Failure, cli, open_records, records_option, stdout_console
from ._show import print_history, print_job, print_run

__all__ = ["history_command", "show_command"]


@cli.command("history")
@click.argument("root", required=False)
@records_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_command(root: str | None, records_path: str | None, limit: int, as_json: bool) -> int:
    """Recent runs (of ROOT), and whether each graph is converging."""
    with open_records(records_path) as store:
        print_history(store, root, limit, stdout_console(), as_json)
    return EXIT_OK


@cli.command("show", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", metavar="RUN")
@click.argument("job", required=False)
@records_option
@click.option("--status", type=click.Choice(["ok", "changed", "failed", "blocked"]),
              help="Only jobs with this status.")
@click.option("--all", "show_all", is_flag=True, help="List jobs that were already fine too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(
    run_id: str, job: str | None, records_path: str | None, status: str | None,
    show_all: bool, as_json: bool,
) -> int:
    """A run's jobs, or one JOB's tries, exception and log (RUN: id, -N or last)."""
    with open_records(records_path) as store:
        try:
            if job is None:
                print_run(store, run_id, stdout_console(), as_json, status, show_all)
            else:
                print_job(store, run_id, job, stdout_console(), as_json)
        except RecordsError as err:
            raise Failure(f"{err.reason}; {str(err).rsplit('; ', 1)[-1]}") from err
    return EXIT_OK
