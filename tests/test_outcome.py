"""One verdict per run (``RunResult.outcome``), said the same way by every
consumer: ``success()``, the summary, the run records, the webhook, the
picture, ``dojobber history``, ``converge()`` and the exit status of
``dojobber run``.  ``changes_pending`` is a dry run's (check mode).

Each test goes over every :class:`RunOutcome`, so a new member that some
consumer does not know fails here.  Stops and interrupts are real: ``stop()``
from inside a job, SIGINT sent to this process, SIGTERM and SIGINT sent to a
``dojobber run`` child.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dojobber import DoJobber, Job, JobStatus, RunOutcome, RunResult
from dojobber._main import main
from dojobber.cli import EXIT_STATUS
from dojobber.cli._show import trend
from dojobber.console import summary_text
from dojobber.notify import WebhookNotifier
from dojobber.records import RecordsListener, RecordStore
from dojobber.render import render
from dojobber.render.picture import build_picture
from tests.fakes.procs import child_env, finish, wait_until
from tests.fakes.webhook import webhook_server

ALL = list(RunOutcome)

#: The DoJobber running now (a job of the STOPPED graph stops it).
_RUNNING: list[DoJobber] = []


def _first_check(outcome: RunOutcome) -> Callable[[Job], None]:
    """What the first job's Check does so that the run ends in ``outcome``."""

    def passes(self: Job) -> None:
        pass

    def fails(self: Job) -> None:
        raise RuntimeError("First never holds")

    def stops(self: Job) -> None:  # passes, and asks the run to stop
        _RUNNING[-1].stop()

    def interrupts(self: Job) -> None:  # Ctrl-C, as the terminal sends it
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # the signal ends this sleep with KeyboardInterrupt

    checks = {
        RunOutcome.CONVERGED: passes,
        RunOutcome.NOT_CONVERGED: fails,
        RunOutcome.STOPPED: stops,
        RunOutcome.INTERRUPTED: interrupts,
        RunOutcome.CHANGES_PENDING: fails,  # in a dry run
    }
    return checks[outcome]


#: What First's Plan says (in the dry run of CHANGES_PENDING).
PLAN = "fix First\nthen tell Top"


def graph_for(outcome: RunOutcome) -> type[Job]:
    """First -> Top; the run of Top ends in ``outcome``."""
    first = type("First", (Job,), {"TRIES": 1, "Check": _first_check(outcome),
                                   "Plan": lambda self: PLAN})
    return type("Top", (Job,), {"DEPS": [first], "Check": lambda self: None})


def run_to(outcome: RunOutcome, *listeners: Any) -> tuple[DoJobber, RunResult]:
    """A run of graph_for(outcome); a dry run for CHANGES_PENDING."""
    dojob = DoJobber()
    dojob.configure(graph_for(outcome), listeners=list(listeners),
                    no_act=outcome is RunOutcome.CHANGES_PENDING)
    _RUNNING.append(dojob)
    try:
        result = dojob.checknrun()
    except KeyboardInterrupt:
        assert outcome is RunOutcome.INTERRUPTED
        assert dojob.result is not None
        result = dojob.result
    finally:
        _RUNNING.pop()
    return dojob, result


#: How the jobs of each run end (First, Top).
STATUSES = {
    RunOutcome.CONVERGED: (JobStatus.OK, JobStatus.OK),
    RunOutcome.NOT_CONVERGED: (JobStatus.FAILED, JobStatus.BLOCKED),
    RunOutcome.STOPPED: (JobStatus.OK, JobStatus.PENDING),
    RunOutcome.INTERRUPTED: (JobStatus.PENDING, JobStatus.PENDING),
    RunOutcome.CHANGES_PENDING: (JobStatus.WOULD_RUN, JobStatus.NOT_CHECKED),
}


@pytest.mark.parametrize("outcome", ALL)
def test_the_result_and_the_facade_agree(outcome: RunOutcome) -> None:
    dojob, result = run_to(outcome)
    assert (result["First"].status, result["Top"].status) == STATUSES[outcome]
    assert result.outcome is outcome
    assert result.success() is dojob.success() is (outcome is RunOutcome.CONVERGED)
    assert dojob.failure() is not dojob.success()
    # Upstream's dicts: a job that would run reads as failed, one not checked as not tried.
    first = {JobStatus.OK: True, JobStatus.FAILED: False, JobStatus.WOULD_RUN: False}
    assert dojob.nodestatus.get("First") is first.get(result["First"].status)
    assert ("First" in dojob.nodeexceptions) is (dojob.nodestatus.get("First") is False)
    assert result["First"].plan == (PLAN if outcome is RunOutcome.CHANGES_PENDING else None)


@pytest.mark.parametrize("outcome", ALL)
def test_summary_says_the_outcome(outcome: RunOutcome) -> None:
    _, result = run_to(outcome)
    line = result.summary()
    assert line.startswith(f"Top: {outcome.label} (")
    assert summary_text(result).splitlines()[0] == line
    assert result.report().splitlines()[-1] == line
    if outcome is RunOutcome.CHANGES_PENDING:
        assert line.endswith("; 1 job would change")
        assert "  would run   First: would: fix First\n" in summary_text(result)
        assert "then tell Top" in summary_text(result)  # every line of the Plan


def test_labels_are_distinct_words() -> None:
    labels = [outcome.label for outcome in ALL]
    assert len(set(labels)) == len(labels)
    assert RunOutcome.NOT_CONVERGED.label == "not converged"


@pytest.mark.parametrize("outcome", ALL)
def test_records_store_the_outcome(outcome: RunOutcome, tmp_path: Path) -> None:
    records = RecordsListener(tmp_path / "records.sqlite3")
    run_to(outcome, records)
    records.close()
    with RecordStore(tmp_path / "records.sqlite3") as store:
        (run,) = store.runs()
    assert run.outcome == outcome.value and run.verdict is outcome
    counts = (run.ok, run.failed, run.blocked)
    first, top = STATUSES[outcome]
    assert counts == tuple(
        [first, top].count(status) for status in (JobStatus.OK, JobStatus.FAILED,
                                                  JobStatus.BLOCKED)
    )


def test_old_records_saying_failed_read_as_not_converged(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    records = RecordsListener(path)
    run_to(RunOutcome.NOT_CONVERGED, records)
    records.close()
    with sqlite3.connect(path) as db:  # as versions before RunOutcome wrote it
        db.execute("UPDATE runs SET outcome = 'failed'")
    db.close()
    with RecordStore(path) as store:
        (run,) = store.runs()
    assert run.outcome == "not_converged" and run.verdict is RunOutcome.NOT_CONVERGED
    assert RunOutcome.read("failed") is RunOutcome.NOT_CONVERGED
    assert RunOutcome.read("stopped") is RunOutcome.STOPPED
    with pytest.raises(ValueError, match="'exploded'"):
        RunOutcome.read("exploded")


def test_webhook_posts_the_outcome_of_each_run() -> None:
    with webhook_server() as hook:
        for outcome in ALL:
            notifier = WebhookNotifier(hook.url)
            run_to(outcome, notifier)
            assert notifier.delivered == 200, notifier.error
    assert [body["outcome"] for body in hook.received] == [o.value for o in ALL]
    for body, outcome in zip(hook.received, ALL, strict=True):
        assert body["converged"] is (outcome is RunOutcome.CONVERGED)
        assert body["interrupted"] is (outcome is RunOutcome.INTERRUPTED)


def test_webhook_only_failures_skips_only_converged_runs() -> None:
    with webhook_server() as hook:
        for outcome in ALL:
            run_to(outcome, WebhookNotifier(hook.url, only_failures=True))
    assert [body["outcome"] for body in hook.received] == [
        o.value for o in ALL if o is not RunOutcome.CONVERGED
    ]


@pytest.mark.parametrize("outcome", ALL)
def test_picture_title_says_the_outcome(outcome: RunOutcome) -> None:
    _, result = run_to(outcome)
    picture = build_picture(result.graph, result)
    assert picture.title.startswith(f"Top: {outcome.label} \u2014 ")
    mermaid = render(result.graph, result, "mermaid").decode()
    assert f"%% Top: {outcome.label} " in mermaid
    svg = render(result.graph, result, "svg").decode()  # the dot program draws it
    assert f"Top: {outcome.label} " in svg


def test_dry_run_outcomes() -> None:
    """A dry run converges when every Check passed, has changes pending when
    one raised, and is not converged when a job could not be checked (its
    constructor raised)."""

    def broken(self: Job) -> None:
        raise OSError("no such config")

    crashing = type("Top", (Job,), {"DEPS": [type("First", (Job,), {
        "__init__": broken, "Check": lambda self: None})], "Check": lambda self: None})
    graphs = {
        RunOutcome.CONVERGED: graph_for(RunOutcome.CONVERGED),
        RunOutcome.CHANGES_PENDING: graph_for(RunOutcome.CHANGES_PENDING),
        RunOutcome.NOT_CONVERGED: crashing,
    }
    for outcome, root in graphs.items():
        dojob = DoJobber()
        dojob.configure(root, no_act=True)
        result = dojob.checknrun()
        assert result.outcome is outcome
        title = build_picture(result.graph, result).title
        suffix = "" if outcome is RunOutcome.CHANGES_PENDING else " (no_act: checks only)"
        assert title.startswith(f"Top: {outcome.label}{suffix} \u2014 "), title
    assert result["First"].status is JobStatus.FAILED
    assert result["Top"].status is JobStatus.BLOCKED


def test_stop_after_one_passing_job_is_stopped_everywhere(tmp_path: Path) -> None:
    """The case that once read "converged" in the records and "failed" in
    the webhook."""
    path = tmp_path / "records.sqlite3"
    with webhook_server() as hook:
        records = RecordsListener(path)
        dojob, result = run_to(RunOutcome.STOPPED, records, WebhookNotifier(hook.url))
        records.close()
    assert not dojob.success() and result.stopped
    assert hook.received[0]["outcome"] == "stopped"
    with RecordStore(path) as store:
        runs = store.runs()
    assert runs[0].outcome == "stopped"
    assert trend(runs) == "last run stopped; no run went to its end"


def test_history_trend_leaves_out_runs_cut_short(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.sqlite3"
    # Runs one after the other (a not converged run leaves First failed and
    # Top blocked: 2), and the trend after each.
    steps = [
        (RunOutcome.NOT_CONVERGED, "not converged yet (2 jobs failed or blocked)"),
        (RunOutcome.CONVERGED, "converged"),
        (RunOutcome.NOT_CONVERGED, "getting worse (failed or blocked per run: 2 -> 0 -> 2)"),
        (RunOutcome.STOPPED,
         "last run stopped; getting worse (failed or blocked per run: 2 -> 0 -> 2)"),
        (RunOutcome.INTERRUPTED,
         "last run interrupted; getting worse (failed or blocked per run: 2 -> 0 -> 2)"),
        (RunOutcome.CHANGES_PENDING,  # a dry run: said first, never counted
         "last run a dry run; last run interrupted; getting worse (failed or blocked per"
         " run: 2 -> 0 -> 2)"),
    ]
    assert {outcome for outcome, _ in steps} == set(RunOutcome)
    for outcome, expected in steps:
        records = RecordsListener(path)
        run_to(outcome, records)
        records.close()
        assert main(["history", "--records", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["trend"] == {"Top": expected}, outcome
    assert main(["history", "--records", str(path)]) == 0
    table = capsys.readouterr().out
    for outcome in ALL:
        assert outcome.label in table


# ----------------------------------------------------------------------
# dojobber run: exit status, records, webhook and summary of each outcome

JOBS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    from dojobber import Job

    class Passes(Job):
        def Check(self):
            pass

    class Fails(Job):
        TRIES = 1
        def Check(self):
            raise RuntimeError("Fails never holds")

    class Waits(Job):
        '''Says it started, then holds after two seconds: time for a signal.'''
        def Check(self):
            Path(os.environ["STARTED"]).touch()
            time.sleep(2)

    def _top(dep):
        return type("Top", (Job,), {"DEPS": [dep], "Check": lambda self: None})

    converged, not_converged, stopped, interrupted, changes_pending = map(
        _top, (Passes, Fails, Waits, Waits, Fails))
    """
)

#: The signal the test sends while Waits waits.
SIGNALS = {RunOutcome.STOPPED: signal.SIGTERM, RunOutcome.INTERRUPTED: signal.SIGINT}


def test_every_outcome_has_its_own_exit_status() -> None:
    assert set(EXIT_STATUS) == set(RunOutcome)
    assert len(set(EXIT_STATUS.values())) == len(EXIT_STATUS)
    assert EXIT_STATUS[RunOutcome.CONVERGED] == 0
    assert 2 not in EXIT_STATUS.values() and 3 not in EXIT_STATUS.values()  # usage, lock


@pytest.mark.slow
@pytest.mark.parametrize("outcome", ALL)
def test_dojobber_run_exit_status(outcome: RunOutcome, tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    started = tmp_path / "started"
    records = tmp_path / "records.sqlite3"
    with webhook_server() as hook:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dojobber", "run", f"{tmp_path / 'jobs.py'}:{outcome.value}",
             "--records", str(records), "--notify", hook.url, "--no-progress",
             *(["-n"] if outcome is RunOutcome.CHANGES_PENDING else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(STARTED=str(started)),
        )
        try:
            if outcome in SIGNALS:
                wait_until(started.exists, 60, "the Waits job to start")
                proc.send_signal(SIGNALS[outcome])
            out, err = proc.communicate(timeout=60)
        finally:
            finish(proc)
    assert proc.returncode == EXIT_STATUS[outcome], err
    assert [body["outcome"] for body in hook.received] == [outcome.value]
    with RecordStore(records) as store:
        (run,) = store.runs()
    assert run.verdict is outcome
    if outcome is RunOutcome.INTERRUPTED:
        assert err.splitlines()[-1] == "interrupted"
    else:
        assert out.startswith(f"Top: {outcome.label} (")
