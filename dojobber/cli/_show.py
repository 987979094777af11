"""What ``dojobber history`` and ``dojobber show`` print (rich or JSON)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..records import RunRecord, Store
from ..results import RunOutcome

__all__ = ["group_sessions", "print_history", "print_job", "print_run", "trend"]

_STYLE = {"ok": "green", "changed": "cyan", "failed": "bold red", "blocked": "yellow"}
#: Colour of each run outcome (None: still running).
_OUTCOME_STYLE: dict[RunOutcome | None, str] = {
    RunOutcome.CONVERGED: "green", RunOutcome.NOT_CONVERGED: "bold red",
    RunOutcome.STOPPED: "yellow", RunOutcome.INTERRUPTED: "magenta", None: "blue",
}


def _outcome(run: RunRecord) -> Text:
    verdict = run.verdict
    return Text(verdict.label if verdict is not None else run.outcome,
                style=_OUTCOME_STYLE[verdict])


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def trend(runs: Sequence[RunRecord]) -> str:
    """Whether a graph is converging, from its runs newest first.

    Converged when the newest finished run converged.  Otherwise compares
    the jobs left unconverged (failed + blocked) of the last two runs that
    went to their end; a newest run stopped or interrupted is said first
    (it did not say whether the graph converges)."""
    done = [r for r in runs if r.verdict is not None]
    if not done:
        return "no finished run yet"
    last = done[0].verdict
    if last is RunOutcome.CONVERGED:
        return "converged"
    ended = [r for r in done if r.verdict in (RunOutcome.CONVERGED, RunOutcome.NOT_CONVERGED)]
    cut = "" if last is RunOutcome.NOT_CONVERGED else f"last run {done[0].outcome}; "
    if not ended:
        return f"{cut}no run went to its end"
    left = [r.failed + r.blocked for r in ended[:5]]
    history = " -> ".join(str(n) for n in reversed(left))
    if len(ended) == 1:
        return f"{cut}not converged yet ({left[0]} jobs failed or blocked)"
    if left[0] < left[1]:
        word = "converging"
    elif left[0] == left[1]:
        word = "not converging"
    else:
        word = "getting worse"
    return f"{cut}{word} (failed or blocked per run: {history})"


def group_sessions(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """``runs`` (newest first) with the rounds of each converge session
    together, newest round first: one group per history line."""
    groups: list[list[RunRecord]] = []
    by_session: dict[str, list[RunRecord]] = {}
    for run in runs:
        if run.session is None:
            groups.append([run])
        elif run.session in by_session:
            by_session[run.session].append(run)
        else:
            by_session[run.session] = [run]
            groups.append(by_session[run.session])
    return groups


def print_history(
    store: Store, root: str | None, limit: int, console: Console, as_json: bool
) -> None:
    runs = store.runs(root=root, limit=limit)
    roots = list(dict.fromkeys(r.root for r in runs))
    trends = {name: trend(store.runs(root=name, limit=5)) for name in roots}
    if as_json:
        console.print_json(
            data={
                "runs": [dataclasses.asdict(r) for r in runs],
                "trend": trends,
            }
        )
        return
    if not runs:
        console.print(f"no runs recorded{f' for {root}' if root else ''} in {store.path}")
        return
    table = Table(title=f"Runs in {store.path}", title_justify="left", expand=False)
    for name, justify in (
        ("Run", "right"), ("Started", "left"), ("Root", "left"), ("Outcome", "left"),
        ("Rounds", "right"), ("Jobs", "right"), ("OK", "right"), ("Changed", "right"),
        ("Failed", "right"), ("Blocked", "right"), ("Time", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for group in group_sessions(runs):
        last, first = group[0], group[-1]
        ids = str(last.id) if len(group) == 1 else f"{first.id}-{last.id}"
        finished = last.finished
        took = None if finished is None else finished - first.started
        rounds = "" if last.session is None else str(last.round or len(group))
        table.add_row(
            ids, _when(first.started), last.root,
            _outcome(last), rounds,
            str(last.jobs), str(last.ok), str(last.changed), str(last.failed), str(last.blocked),
            _secs(took),
        )
    console.print(table)
    for name in roots:
        console.print(f"{name}: {trends[name]}")


def print_run(
    store: Store,
    run_id: str,
    console: Console,
    as_json: bool,
    status: str | None = None,
    show_all: bool = False,
) -> None:
    run = store.run(run_id)
    jobs = store.jobs(run.id, status=status)
    if as_json:
        console.print_json(
            data={"run": dataclasses.asdict(run), "jobs": [dataclasses.asdict(j) for j in jobs]}
        )
        return
    command = " ".join([run.script or "?", *run.argv])
    console.print(
        Text.assemble(
            (f"Run {run.id}", "bold"), f" of {run.root}: ",
            _outcome(run),
            f"  started {_when(run.started)}, took {_secs(run.duration) or '?'}",
        )
    )
    console.print(f"  {run.user}@{run.host} pid {run.pid}: {command}")
    if run.session is not None:
        console.print(f"  round {run.round} of converge session {run.session}")
    if run.args and (run.args.get("args") or run.args.get("kwargs")):
        console.print(f"  args: {json.dumps(run.args)}")
    console.print(
        f"  {run.ok} ok, {run.changed} changed, {run.failed} failed, {run.blocked} blocked"
        f" of {run.jobs} jobs"
    )
    shown = jobs if (show_all or status) else [j for j in jobs if j.status != "ok"]
    table = Table(title_justify="left")
    for name in ("Job", "Status", "Tries", "Time", "Error"):
        table.add_column(name)
    for job in shown:
        table.add_row(
            job.name, Text(job.status, style=_STYLE.get(job.status, "")), str(job.tries),
            _secs(job.duration), (job.exception or "").splitlines()[0] if job.exception else "",
        )
    if shown:
        console.print(table)
    hidden = len(jobs) - len(shown)
    if hidden:
        console.print(f"({hidden} jobs were already fine; --all lists them)", style="dim")


def print_job(store: Store, run_id: str, name: str, console: Console, as_json: bool) -> None:
    job = store.job(run_id, name)
    logs = store.logs(job.run_id, name)
    if as_json:
        console.print_json(
            data={**dataclasses.asdict(job), "log": [dataclasses.asdict(ln) for ln in logs]}
        )
        return
    console.print(
        Text.assemble(
            (job.name, "bold"), f" in run {job.run_id}: ",
            (job.status, _STYLE.get(job.status, "")),
            f", {job.tries} {'try' if job.tries == 1 else 'tries'}, {_secs(job.duration)}",
        )
    )
    if job.result is not None:
        console.print(f"  result: {job.result}", markup=False)
    if job.phases:
        table = Table("Try", "Phase", "Outcome", "Time", "Error", title_justify="left")
        for phase, attempt, _start, secs, ok, error in job.phases:
            table.add_row(
                str(attempt), phase, Text("pass" if ok else "fail", "green" if ok else "red"),
                f"{secs:.3f}s", error or "",
            )
        console.print(table)
    if job.traceback:
        console.print("Traceback of the last failure:", style="bold")
        console.print(job.traceback, markup=False, highlight=False)
    if logs:
        console.print("Log:", style="bold")
        for ln in logs:
            stamp = time.strftime("%H:%M:%S", time.localtime(ln.created))
            level = logging.getLevelName(ln.level)
            console.print(
                f"{stamp} {ln.phase}#{ln.attempt} {level:<7} {ln.logger}: {ln.message}",
                markup=False,
                highlight=False,
            )
    else:
        console.print("(no log lines)", style="dim")

