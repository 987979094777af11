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

from ..records import JobRecord, RunRecord, Store
from ..results import RunOutcome, plan_line

__all__ = [
    "args_text", "group_sessions", "print_history", "print_job", "print_run", "trend",
    "trends_of",
]

_STYLE = {"ok": "green", "changed": "cyan", "failed": "bold red", "blocked": "yellow",
          "would_run": "magenta", "not_checked": "blue"}
#: Colour of each run outcome (None: still running).
_OUTCOME_STYLE: dict[RunOutcome | None, str] = {
    RunOutcome.CONVERGED: "green", RunOutcome.NOT_CONVERGED: "bold red",
    RunOutcome.STOPPED: "yellow", RunOutcome.INTERRUPTED: "magenta", None: "blue",
    RunOutcome.CHANGES_PENDING: "bold magenta",
}
#: How a dry run (``-n``) that went to its end is shown: it changed nothing.
_DRY_TEXT = {
    RunOutcome.CONVERGED: ("dry: no changes", "dim green"),
    RunOutcome.NOT_CONVERGED: ("dry: check failed", "dim red"),
}


def _outcome_text(run: RunRecord) -> tuple[str, str]:
    """(label, style) of a run's outcome; a dry run (``-n``) says so."""
    verdict = run.verdict
    if run.no_act and verdict in _DRY_TEXT:
        return _DRY_TEXT[verdict]
    return (verdict.label if verdict is not None else run.outcome), _OUTCOME_STYLE[verdict]


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _short_when(stamp: float) -> str:
    """Month, day and time: what history needs at 80 columns."""
    return time.strftime("%m-%d %H:%M", time.localtime(stamp))


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def args_text(run: RunRecord) -> str:
    """A run's ``--arg`` values as ``k=v k=v`` (positional ones first)."""
    args = run.args if isinstance(run.args, dict) else {}
    words = [str(value) for value in args.get("args") or []]
    kwargs = args.get("kwargs") or {}
    words += [f"{key}={value}" for key, value in sorted(kwargs.items())]
    return " ".join(words)


def trend(runs: Sequence[RunRecord]) -> str:
    """Whether a graph is converging, from its runs newest first (one root,
    one set of arguments).

    Dry runs (``-n``) change nothing, so they are left out (a newest dry
    run is said first).  Converged when the newest finished run converged.
    Otherwise compares the jobs left unconverged (failed + blocked) of the
    last two runs that went to their end; a newest run stopped or
    interrupted is said first (it did not say whether the graph converges)."""
    dry = "last run a dry run; " if runs and runs[0].no_act else ""
    done = [r for r in runs if r.verdict is not None and not r.no_act]
    if not done:
        return f"{dry}no finished run yet"
    last = done[0].verdict
    if last is RunOutcome.CONVERGED:
        return f"{dry}converged"
    ended = [r for r in done if r.verdict in (RunOutcome.CONVERGED, RunOutcome.NOT_CONVERGED)]
    cut = dry if last is RunOutcome.NOT_CONVERGED else f"{dry}last run {done[0].outcome}; "
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


#: Runs read per root to find the last few with the same arguments.
_TREND_DEPTH = 200


def trends_of(store: Store, runs: Sequence[RunRecord]) -> dict[str, str]:
    """One trend per root and arguments seen in ``runs``, keyed ``root`` or
    ``root k=v ...``."""
    keys = list(dict.fromkeys((r.root, args_text(r)) for r in runs))
    out: dict[str, str] = {}
    cache: dict[str, list[RunRecord]] = {}
    for root, args in keys:
        if root not in cache:
            cache[root] = store.runs(root=root, limit=_TREND_DEPTH)
        same = [r for r in cache[root] if args_text(r) == args][:10]
        out[f"{root} {args}".strip()] = trend(same)
    return out


def print_history(
    store: Store, root: str | None, limit: int, console: Console, as_json: bool
) -> None:
    runs = store.runs(root=root, limit=limit)
    trends = trends_of(store, runs)
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
    groups = group_sessions(runs)
    with_rounds = any(group[0].session is not None for group in groups)
    rows: list[list[str]] = []
    styles: list[str] = []
    for group in groups:
        last, first = group[0], group[-1]
        ids = str(last.id) if len(group) == 1 else f"{first.id}-{last.id}"
        finished = last.finished
        took = None if finished is None else finished - first.started
        label, style = _outcome_text(last)
        row = [ids, _short_when(first.started), f"{last.root} {args_text(last)}".strip(), label]
        if with_rounds:
            row.append("" if last.session is None else str(last.round or len(group)))
        row += [str(last.jobs), str(last.ok), str(last.changed), str(last.failed),
                str(last.blocked), _secs(took)]
        rows.append(row)
        styles.append(style)
    headers = ["Run", "Started", "Root", "Outcome"] + (["Rnds"] if with_rounds else []) + [
        "Jobs", "OK", "Chg", "Fail", "Blk", "Time"]
    table = Table(title=f"Runs in {store.path}", title_justify="left", expand=False,
                  box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    widths = [max(len(name), *(len(row[col]) for row in rows))
              for col, name in enumerate(headers)]
    root_col = headers.index("Root")
    # Every column but Root keeps its full width; Root (with the arguments)
    # gets what is left of the console's width, ending in an ellipsis.
    others = sum(widths) - widths[root_col] + 2 * (len(headers) - 1)  # the gaps
    room = max(8, console.width - others - 1)
    for col, name in enumerate(headers):
        is_root = col == root_col
        table.add_column(
            name, justify="left" if name in ("Started", "Root", "Outcome") else "right",
            no_wrap=True, overflow="ellipsis",
            min_width=None if is_root else widths[col],
            max_width=min(room, widths[col]) if is_root else None,
        )
    outcome_col = headers.index("Outcome")
    for row, style in zip(rows, styles, strict=True):
        cells: list[str | Text] = list(row)
        cells[outcome_col] = Text(row[outcome_col], style=style)
        table.add_row(*cells)
    console.print(table)
    for key, text in trends.items():
        console.print(f"{key}: {text}", overflow="fold")


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
            Text(*_outcome_text(run)),
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
    would = sum(job.status == "would_run" for job in jobs)
    if run.no_act:
        console.print(f"  dry run: {would} job{'' if would == 1 else 's'} would run")
    shown = jobs if (show_all or status) else [j for j in jobs if j.status != "ok"]
    table = Table(title_justify="left")
    for name in ("Job", "Status", "Tries", "Time", "Would do / error" if would else "Error"):
        table.add_column(name)
    for job in shown:
        table.add_row(
            job.name, Text(job.status.replace("_", " "), style=_STYLE.get(job.status, "")),
            str(job.tries), _secs(job.duration), _job_note(job),
        )
    if shown:
        console.print(table)
    hidden = len(jobs) - len(shown)
    if hidden:
        console.print(f"({hidden} jobs were already fine; --all lists them)", style="dim")


def _job_note(job: JobRecord) -> str:
    """One line on a stored job: what it would do (check mode), or its error."""
    if job.status == "would_run" and job.plan:
        return f"would: {plan_line(job.plan)}"
    if job.status == "not_checked":
        return "depends on a change"
    return (job.exception or "").splitlines()[0] if job.exception else ""


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
    if job.plan is not None:
        console.print("  would (its Plan):", style="bold")
        for line in job.plan.splitlines():
            console.print(f"    {line}", markup=False, highlight=False)
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

