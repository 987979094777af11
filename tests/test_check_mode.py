"""Check mode: a dry run says what would change.

Real runs of real graphs (inline, on threads and in a process pool), real
records (SQLite, and PostgreSQL in test_check_mode_postgres), the real
command line in a child process, the real web view on loopback, and
pictures drawn by the real renderer.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from dojobber import (
    DoJobber,
    Job,
    JobStatus,
    Listener,
    PlanError,
    RunonlyJob,
    RunOutcome,
    Verdict,
)
from dojobber.cli import EXIT_CHANGES_PENDING, EXIT_FAILED, EXIT_OK, EXIT_STATUS
from dojobber.cluster import open_executor
from dojobber.records import RecordStore
from dojobber.records._schema import MIGRATIONS, migrate
from dojobber.render import render
from dojobber.render.picture import STYLES
from tests.fakes.procs import child_env

#: Jobs whose Check passes once a file named after them exists in DONE.
DONE: dict[str, Any] = {"dir": None}


class _Marker(Job):
    def Check(self, *args: Any, **kwargs: Any) -> str:
        path = Path(DONE["dir"]) / type(self).__name__
        if not path.exists():
            raise FileNotFoundError(f"{path} is not there yet")
        return path.read_text()

    def Run(self, *args: Any, **kwargs: Any) -> None:
        (Path(DONE["dir"]) / type(self).__name__).write_text("made")


class Ready(_Marker):
    """Made before the dry run: its Check passes."""


class Write(_Marker):
    """Would run; its Plan says what it would write, with the run's args."""

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        return f"write {Path(DONE['dir']) / 'Write'} for {kwargs.get('site', '?')}"


class NoPlan(_Marker):
    """Would run; it has no Plan."""


class After(_Marker):
    DEPS = [Ready, Write]


class Script(RunonlyJob):
    def Run(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dry run never runs anything")


class Changes(_Marker):
    """Top of a graph where nothing fails: changes pending."""

    DEPS = [After, NoPlan, Script]


class Unbuildable(_Marker):
    def __init__(self) -> None:
        raise OSError("the constructor cannot read its config")


class BadPlan(_Marker):
    def Plan(self, *args: Any, **kwargs: Any) -> str:
        raise KeyError("site")


class ListPlan(_Marker):
    def Plan(self, *args: Any, **kwargs: Any) -> Any:
        return ["not", "a", "str"]


class BehindBad(_Marker):
    DEPS = [BadPlan, Write]


class Crashes(_Marker):
    """Top of a graph where jobs cannot be checked."""

    DEPS = [Changes, Unbuildable, BehindBad, ListPlan]


@pytest.fixture(autouse=True)
def done_dir(tmp_path: Path) -> Path:
    DONE["dir"] = str(tmp_path)
    (tmp_path / "Ready").write_text("made")
    return tmp_path


def dry_run(root: type[Job], **options: Any) -> DoJobber:
    dojob = DoJobber()
    dojob.configure(root, no_act=True, **options)
    dojob.set_args(site="web1")
    dojob.checknrun()
    return dojob


def statuses(dojob: DoJobber) -> dict[str, str]:
    assert dojob.result is not None
    return {job.name: job.status.value for job in dojob.result}


CHANGES = {"Ready": "ok", "Write": "would_run", "NoPlan": "would_run", "After": "not_checked",
           "Script": "would_run", "Changes": "not_checked"}


# ----------------------------------------------------------------------
# Statuses, plans, outcome and the upstream dicts


@pytest.mark.parametrize("how", ["inline", "threads", "processes"])
def test_changes_pending(how: str, done_dir: Path) -> None:
    if how == "processes":
        with open_executor("processes:2") as executor:
            dojob = dry_run(Changes, executor=executor)
    else:
        dojob = dry_run(Changes, workers=4 if how == "threads" else 1)
    result = dojob.result
    assert result is not None
    assert statuses(dojob) == CHANGES
    assert result.outcome is RunOutcome.CHANGES_PENDING and not dojob.success()
    assert result["Write"].plan == f"write {done_dir / 'Write'} for web1"  # Plan got the args
    assert result["NoPlan"].plan is None and result["Script"].plan is None
    assert [job.name for job in result.would_run()] == ["Write", "NoPlan", "Script"]
    assert [p.name for p in result["Write"].phases] == ["check", "plan"]
    assert result.summary().endswith("; 3 jobs would change")
    # Upstream's view of the same dry run: what upstream 0.6.3 reports.
    assert dojob.nodestatus == {"Ready": True, "Write": False, "NoPlan": False, "Script": False,
                                "After": None, "Changes": None}
    assert set(dojob.nodeexceptions) == {"Write", "NoPlan", "Script"}
    assert isinstance(dojob.nodeexceptions["Write"], FileNotFoundError)
    assert type(dojob.nodeexceptions["Script"]).__name__ == "NoActError"
    assert dojob.noderesults == {"Ready": "made"}
    assert sorted(p.name for p in done_dir.iterdir()) == ["Ready"]  # nothing was done


def test_jobs_that_cannot_be_checked_fail_the_dry_run() -> None:
    dojob = dry_run(Crashes)
    result = dojob.result
    assert result is not None
    assert statuses(dojob) == {
        **CHANGES, "Unbuildable": "failed", "BadPlan": "failed", "BehindBad": "blocked",
        "ListPlan": "failed", "Crashes": "blocked"}
    assert result.outcome is RunOutcome.NOT_CONVERGED
    bad = result["BadPlan"].exception
    assert isinstance(bad, PlanError) and isinstance(bad.__cause__, KeyError)
    assert str(bad).startswith("BadPlan: its Plan() raised KeyError: 'site'; ")
    assert [(p.name, p.ok) for p in result["BadPlan"].phases] == [("check", False),
                                                                  ("plan", False)]
    listed = result["ListPlan"].exception
    assert isinstance(listed, PlanError)
    assert "ListPlan: its Plan() returned a list, not a str or None" in str(listed)
    assert [p.name for p in result["Unbuildable"].phases] == ["init"]
    # A job behind one that cannot be checked is blocked, even when it also
    # waits for one that would run.
    assert result["BehindBad"].status is JobStatus.BLOCKED
    assert pickle.loads(pickle.dumps(bad)).args == bad.args  # named, and it travels


class Hangs(_Marker):
    """Its Check outlasts its TIMEOUT: it cannot be checked."""

    TIMEOUT = 0.2

    def Check(self, *args: Any, **kwargs: Any) -> str:
        threading.Event().wait(2)
        return "late"


class Exits(_Marker):
    def Check(self, *args: Any, **kwargs: Any) -> str:
        raise SystemExit(3)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_check_past_its_timeout_or_exiting_cannot_be_checked(workers: int) -> None:
    top = type("Top", (Job,), {"DEPS": [Hangs, Exits, Write], "Check": lambda self: None})
    dojob = dry_run(top, workers=workers)
    result = dojob.result
    assert result is not None
    assert statuses(dojob) == {"Hangs": "failed", "Exits": "failed", "Write": "would_run",
                               "Top": "blocked"}
    assert type(result["Hangs"].exception).__name__ == "JobTimeoutError"
    assert isinstance(result["Exits"].exception, SystemExit)
    assert result.outcome is RunOutcome.NOT_CONVERGED


def test_nothing_would_change_once_converged() -> None:
    real = DoJobber()
    real.configure(After)
    assert real.checknrun().success()
    dojob = dry_run(After)
    assert dojob.result is not None and dojob.result.outcome is RunOutcome.CONVERGED
    assert dojob.result.summary().endswith("; nothing would change")
    assert dojob.success()


def test_plan_is_called_only_in_a_dry_run(done_dir: Path) -> None:
    called: list[str] = []

    class Counted(_Marker):
        def Plan(self) -> str:
            called.append("plan")
            return "make it"

    dojob = DoJobber()
    dojob.configure(Counted)
    result = dojob.checknrun()
    assert called == [] and result["Counted"].status is JobStatus.CHANGED
    assert result["Counted"].plan is None


def test_listeners_hear_the_plan_phase() -> None:
    heard: list[tuple[str, str, bool]] = []

    class Phases(Listener):
        def phase_finished(self, job: str, phase: str, attempt: int, ok: bool,
                           duration: float, error: BaseException | None) -> None:
            heard.append((job, phase, ok))

    dry_run(Write, listeners=[Phases()])
    assert heard == [("Write", "init", True), ("Write", "check", False), ("Write", "plan", True)]


def test_converge_stops_at_changes_pending() -> None:
    dojob = DoJobber()
    dojob.configure(Changes, no_act=True)
    session = dojob.converge(max_rounds=5, backoff=0)
    assert session.verdict is Verdict.CHANGES_PENDING and len(session.rounds) == 1
    assert session.reason.startswith("3 jobs would run; a dry run changes nothing")
    assert "changes_pending" in session.report()


# ----------------------------------------------------------------------
# Pictures


def test_pictures_colour_would_run_and_not_checked_apart() -> None:
    result = dry_run(Crashes).result
    assert result is not None
    fills = {status: STYLES[status].fill for status in JobStatus}
    assert len(set(fills.values())) == len(fills)  # every status its own colour
    svg = render(result.graph, result, "svg").decode()
    for status in (JobStatus.WOULD_RUN, JobStatus.NOT_CHECKED, JobStatus.FAILED):
        assert fills[status] in svg, status
    assert "would: write" in svg  # the Plan's first line in the node's label
    assert "would run: Check failed (dry run)" in svg  # the legend
    mermaid = render(result.graph, result, "mermaid").decode()
    assert f"classDef would_run fill:{fills[JobStatus.WOULD_RUN]}" in mermaid
    assert "class " in mermaid and " not_checked" in mermaid
    page = result._repr_html_()  # Jupyter
    assert "<td>would run</td>" in page and "<b>Write</b> would: write " in page


# ----------------------------------------------------------------------
# Records


def test_records_keep_the_plan_and_show_prints_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from dojobber import main

    path = tmp_path / "records.sqlite3"
    dry_run(Changes, records=str(path)).records.close()  # type: ignore[union-attr]
    with RecordStore(path) as store:
        (run,) = store.runs()
        jobs = {job.name: job for job in store.jobs(run.id)}
    assert run.verdict is RunOutcome.CHANGES_PENDING and run.no_act
    assert jobs["Write"].status == "would_run"
    assert jobs["Write"].plan == f"write {Path(DONE['dir']) / 'Write'} for web1"
    assert jobs["After"].status == "not_checked" and jobs["After"].plan is None
    assert main(["show", "last", "--records", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "dry run: 3 jobs would run" in shown
    assert "would: write" in shown and "not checked" in shown
    assert main(["show", "last", "Write", "--records", str(path)]) == 0
    assert "would (its Plan):" in capsys.readouterr().out
    assert main(["history", "--records", str(path)]) == 0
    assert "changes pending" in capsys.readouterr().out


def test_older_records_gain_the_plan_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:2])  # as dojobber wrote it before check mode
    conn.close()
    dry_run(Changes, records=str(path)).records.close()  # type: ignore[union-attr]
    with RecordStore(path) as store:
        assert store.job("last", "Write").plan is not None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


# ----------------------------------------------------------------------
# The command line


JOBS = textwrap.dedent(
    """
    from dojobber import Job

    class Passes(Job):
        def Check(self):
            pass

    class Todo(Job):
        def Check(self):
            raise RuntimeError("not done")
        def Plan(self):
            print("a Plan that prints")  # (--json: stdout stays the document)
            return "do it\\nand more"

    class Broken(Job):
        def __init__(self):
            raise OSError("cannot start")
        def Check(self):
            pass

    def _top(*deps):
        return type("Top", (Job,), {"DEPS": list(deps), "Check": lambda self: None})

    nothing = _top(Passes)
    pending = _top(Passes, Todo)
    crashed = _top(Todo, Broken)
    """
)


def dojobber_run(tmp_path: Path, root: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "jobs.py").write_text(JOBS)
    return subprocess.run(
        [sys.executable, "-m", "dojobber", "run", f"{tmp_path / 'jobs.py'}:{root}", "-n",
         "--records", str(tmp_path / "records.sqlite3"), "--no-progress", *extra],
        capture_output=True, text=True, env=child_env(), timeout=120)


@pytest.mark.parametrize(("root", "code", "line"), [
    ("nothing", EXIT_OK, "Top: converged (2 ok) in "),
    ("pending", EXIT_CHANGES_PENDING, "Top: changes pending (1 ok, 1 would run, 1 not checked)"),
    ("crashed", EXIT_FAILED, "Top: not converged (1 failed, 1 blocked, 1 would run) in "),
])
def test_exit_status_of_a_dry_run(tmp_path: Path, root: str, code: int, line: str) -> None:
    done = dojobber_run(tmp_path, root)
    assert done.returncode == code, done.stderr
    assert any(out.startswith(line) for out in done.stdout.splitlines()), done.stdout
    if root == "pending":
        assert "  would run   Todo: would: do it\n" in done.stdout
        assert "and more" in done.stdout
    assert len({EXIT_CHANGES_PENDING, *EXIT_STATUS.values(), 2, 3}) == len(EXIT_STATUS) + 2


def test_json_of_a_dry_run(tmp_path: Path) -> None:
    done = dojobber_run(tmp_path, "pending", "--json")
    assert done.returncode == EXIT_CHANGES_PENDING, done.stderr
    data = json.loads(done.stdout)
    assert data["outcome"] == "changes_pending" and data["no_act"] is True
    assert data["jobs"]["Todo"]["status"] == "would_run"
    assert data["jobs"]["Todo"]["plan"] == "do it\nand more"
    assert data["jobs"]["Top"] == {**data["jobs"]["Top"], "status": "not_checked", "plan": None}
    assert data["would_run"] == [{"job": "Todo", "plan": "do it\nand more"}]
    assert data["counts"]["would_run"] == 1 and data["counts"]["not_checked"] == 1
    assert "a Plan that prints" in done.stderr


def test_until_converged_dry_run_ends_after_one_round(tmp_path: Path) -> None:
    done = dojobber_run(tmp_path, "pending", "--until-converged", "--backoff", "1h")
    assert done.returncode == EXIT_CHANGES_PENDING, done.stderr
    assert "changes pending after 1 round" in done.stdout + done.stderr


# ----------------------------------------------------------------------
# The web view


def test_web_view_shows_the_dry_run(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from tests.fakes.web import fetch, web_server

    path = tmp_path / "records.sqlite3"
    dry_run(Changes, records=str(path)).records.close()  # type: ignore[union-attr]
    with web_server(records=str(path), token="t" * 24, token_given=True) as url:
        data = fetch(f"{url}/api/runs/1").json()
        page = fetch(f"{url}/runs/1").text
        job = fetch(f"{url}/api/runs/1/jobs/Write").json()["job"]
        only = fetch(f"{url}/api/runs/1?status=would_run").json()
    assert data["run"]["outcome"] == "changes_pending"
    counts = data["run"]["counts"]
    assert (counts["would_run"], counts["not_checked"], counts["ok"]) == (3, 2, 1)
    assert {j["name"]: j["status"] for j in data["jobs"]} == CHANGES
    write = next(j for j in data["jobs"] if j["name"] == "Write")
    assert write["plan"] == f"write {Path(DONE['dir']) / 'Write'} for web1"
    assert job["plan"] == write["plan"] and job["status"] == "would_run"
    assert [j["name"] for j in only["jobs"]] == ["Write", "NoPlan", "Script"]
    assert 'class="status would_run">would run<' in page
    assert 'class="status not_checked">not checked<' in page
    assert "would: write" in page


def test_postgres_records_keep_the_plan(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    from dojobber.records import open_store, stored_run

    dry_run(Changes, records=pg_url).records.close()  # type: ignore[union-attr]
    store = open_store(pg_url)
    try:
        run = store.run("last")
        jobs = {job.name: job for job in store.jobs(run.id)}
        _graph, result = stored_run(store, run.id)
    finally:
        store.close()
    assert run.verdict is RunOutcome.CHANGES_PENDING
    assert {name: job.status for name, job in jobs.items()} == CHANGES
    assert jobs["Write"].plan == f"write {Path(DONE['dir']) / 'Write'} for web1"
    assert result["Write"].plan == jobs["Write"].plan  # a stored run, drawn again
    assert result.outcome is RunOutcome.CHANGES_PENDING


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stored_trend_leaves_out_dry_runs(backend: str, tmp_path: Path, done_dir: Path,
                                         request: pytest.FixtureRequest) -> None:
    """The web view's trend (Browsable.trend), like ``dojobber history``'s,
    never counts a dry run before the run it is about."""
    from dojobber.records import open_store

    location = (str(tmp_path / "records.sqlite3") if backend == "sqlite"
                else request.getfixturevalue("pg_url"))
    for no_act in (False, True, False):
        if no_act:
            (done_dir / "Write").unlink()  # so that the dry run finds a change
        dojob = DoJobber()
        dojob.configure(Write, records=location, no_act=no_act)
        dojob.checknrun()
        dojob.records.close()  # type: ignore[union-attr]
    store = open_store(location)
    try:
        last, dry, first = (run.id for run in store.runs(limit=3))
        assert store.run(dry).verdict is RunOutcome.CHANGES_PENDING
        assert [i for i, _, _ in store.trend(last)] == [first, last]
        assert store.trend(dry) == [(first, "converged", 0), (dry, "changes_pending", 0)]
    finally:
        store.close()
