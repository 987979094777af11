"""Run records in SQLite: write, reopen, read back; crashes; two writers."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from dojobber import DoJobber, DummyJob, Job
from dojobber.records import (
    RecordsError,
    RecordsListener,
    RecordStore,
    default_path,
    mask_argv,
    mask_secrets,
    stored_run,
)
from dojobber.records._schema import SCHEMA_VERSION, migrate
from tests.fakes.procs import finish, read_line, start_python, wait_until

log = logging.getLogger("tests.records")


class Fetch(Job):
    def Check(self, **kw: object) -> str:
        if not self.global_storage.get("fetched"):
            raise ValueError("not fetched yet")
        log.info("fetched is %s", self.global_storage["fetched"])
        return "payload"

    def Run(self, **kw: object) -> None:
        log.info("fetching")
        print("fetching on stdout")
        self.global_storage["fetched"] = "yes"


class Broken(Job):
    DEPS = [Fetch]
    TRIES = 2
    RETRY_DELAY = 0

    def Check(self, **kw: object) -> None:
        log.warning("broken check")
        raise RuntimeError("Broken is broken")


class Top(Job):
    DEPS = [Broken]

    def Check(self, **kw: object) -> None:
        pass


def _run(path: Path, **configure: object) -> DoJobber:
    dj = DoJobber()
    dj.configure(Top, records=path, **configure)  # type: ignore[arg-type]
    dj.set_args(user="ann", api_token="s3cret", nested={"password": "pw", "n": 1})
    dj.checknrun()
    return dj


def test_reopen_reads_everything_back(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    dj = _run(path)
    assert dj.records is not None and dj.records.run_id is not None
    dj.records.close()
    with RecordStore(path) as store:
        (run,) = store.runs()
        assert run.id == dj.records.run_id
        assert (run.root, run.target, run.outcome) == ("Top", "Top", "not_converged")
        assert (run.jobs, run.ok, run.changed, run.failed, run.blocked) == (3, 0, 1, 1, 1)
        assert run.finished is not None and run.finished >= run.started
        assert run.pid == os.getpid() and run.host and run.user
        assert run.args["kwargs"] == {
            "user": "ann", "api_token": "***", "nested": {"password": "***", "n": 1}
        }
        jobs = {j.name: j for j in store.jobs(run.id)}
        assert list(jobs) == ["Fetch", "Broken", "Top"]
        fetch = jobs["Fetch"]
        assert (fetch.status, fetch.tries, fetch.result) == ("changed", 1, "'payload'")
        assert [p[0] for p in fetch.phases] == ["check", "run", "recheck"]
        assert fetch.phases[0][5] == "ValueError: not fetched yet"
        broken = store.job("last", "Broken")
        assert (broken.status, broken.tries) == ("failed", 2)
        assert broken.exception == "RuntimeError: Broken is broken"
        assert broken.traceback is not None and "Broken is broken" in broken.traceback
        assert len(broken.phases) == 6
        assert jobs["Top"].status == "blocked" and jobs["Top"].tries == 0
        lines = [(ln.job, ln.phase, ln.attempt, ln.message) for ln in store.logs(run.id)]
        assert ("Fetch", "run", 1, "fetching") in lines
        assert ("Fetch", "recheck", 1, "fetched is yes") in lines
        assert [ln[2] for ln in lines if ln[0] == "Broken"] == [1, 1, 2, 2]
        # stdout is not captured unless asked for.
        assert not any(ln.logger == "stdout" for ln in store.logs(run.id))
        graph, result = stored_run(store, run.id)
        assert graph.names == ["Fetch", "Broken", "Top"]
        assert graph.deps == [(), (0,), (1,)]
        assert result["Broken"].status.value == "failed"
        error = result["Broken"].exception
        assert (type(error).__name__, str(error)) == ("RuntimeError", "Broken is broken")
        assert store.run(-1).id == run.id
        # Job and phase times are wall-clock seconds within the run.
        for job in (fetch, broken):
            assert job.started is not None
            assert run.started <= job.started <= run.finished
            for phase in job.phases:
                assert run.started <= phase[2] <= run.finished


def test_deleting_a_run_deletes_its_jobs_and_logs(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    dj = _run(path)
    assert dj.records is not None and dj.records.store is not None
    # The listener's own connection does not check foreign keys ...
    assert dj.records.store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    dj.records.close()
    # ... a store opened to read and tidy up does: a run takes its rows along.
    with RecordStore(path) as store:
        (run,) = store.runs()
        assert store.jobs(run.id) and store.logs(run.id)
        with store.write() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        for table in ("jobs", "job_details", "logs"):
            assert store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_runs_of_one_graph_share_its_stored_copy(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    for _ in range(2):
        _run(path).records.close()  # type: ignore[union-attr]

    class Other(Job):
        DEPS = [Fetch]

        def Check(self, **kw: object) -> None:
            pass

    class Lone(Job):  # the same names as Other's graph, but no edge
        def Check(self, **kw: object) -> None:
            pass

    Loner = type("Other", (Job,), {"DEPS": [type("Fetch", (DummyJob,), {}), Lone],
                                   "Check": Lone.Check})
    for root in (Other, Loner):
        dj = DoJobber()
        dj.configure(root, records=path)
        dj.checknrun()
        dj.records.close()  # type: ignore[union-attr]
    with RecordStore(path) as store:
        rows = store.conn.execute("SELECT graph_id FROM runs ORDER BY id").fetchall()
        assert rows[0] == rows[1] != rows[2] != rows[3] != rows[0]
        assert store.conn.execute("SELECT COUNT(*) FROM graphs").fetchone()[0] == 3
        assert store.graph_data(3) == {"names": ["Fetch", "Other"], "deps": [[], [0]],
                                       "dummy": []}
        assert store.graph_data(4) == {"names": ["Fetch", "Lone", "Other"],
                                       "deps": [[], [], [0, 1]], "dummy": [0]}


def test_runs_are_listed_newest_first_and_filtered_by_root(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    _run(path)

    class Other(Job):
        def Check(self) -> None:
            pass

    dj = DoJobber()
    dj.configure(Other, records=path)
    dj.checknrun()
    _run(path)
    with RecordStore(path) as store:
        assert [r.root for r in store.runs()] == ["Top", "Other", "Top"]
        assert [r.outcome for r in store.runs(root="Other")] == ["converged"]
        assert store.run(-2).root == "Other"
        with pytest.raises(RecordsError, match="no run 99"):
            store.run(99)
        with pytest.raises(RecordsError, match="has no job 'Nope'"):
            store.job("last", "Nope")
        with pytest.raises(RecordsError, match="not a run id"):
            store.run("yesterday")


def test_output_capture_and_capture_level(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    listener = RecordsListener(path, capture_output=True, log_level=logging.DEBUG)
    dj = DoJobber()
    dj.configure(Top, listeners=[listener])
    dj.checknrun()
    listener.close()
    with RecordStore(path) as store:
        lines = store.logs("last", "Fetch")
    assert ("stdout", "run", "fetching on stdout") in [
        (ln.logger, ln.phase, ln.message) for ln in lines
    ]

    class Chatty(Job):
        def Check(self) -> None:
            log.debug("a detail")
            log.info("a line")

    # The capture level decides which log records are kept.
    for level, kept in ((logging.DEBUG, ["a detail", "a line"]), (logging.INFO, ["a line"])):
        listener = RecordsListener(path, log_level=level)
        dj = DoJobber()
        dj.configure(Chatty, listeners=[listener])
        dj.checknrun()
        listener.close()
        with RecordStore(path) as store:
            assert [ln.message for ln in store.logs("last", "Chatty")] == kept, level


def test_interrupted_by_ctrl_c(tmp_path: Path) -> None:
    class Stop(Job):
        def Check(self) -> None:
            raise KeyboardInterrupt

    dj = DoJobber()
    dj.configure(Stop, records=tmp_path / "r.db")
    with pytest.raises(KeyboardInterrupt):
        dj.checknrun()
    with RecordStore(tmp_path / "r.db") as store:
        assert store.run("last").outcome == "interrupted"


def test_masking_of_command_lines() -> None:
    assert mask_argv(["run", "x.py:Top", "--arg", "password=pw", "--arg", "host=h",
                      "--token", "abc", "--api-key=k", "-v"]) == [
        "run", "x.py:Top", "--arg", "password=***", "--arg", "host=h",
        "--token", "***", "--api-key=***", "-v",
    ]
    assert mask_secrets(("a", {"Secret": 1, "ok": [object]})) == [
        "a", {"Secret": "***", "ok": ["<class 'object'>"]}
    ]


def test_default_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOJOBBER_RECORDS", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_path() == str(tmp_path / "state" / "dojobber" / "records.sqlite3")
    monkeypatch.setenv("DOJOBBER_RECORDS", str(tmp_path / "mine.db"))
    assert default_path() == str(tmp_path / "mine.db")


def test_unusable_paths_fail_at_configure(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(RecordsError, match="not a usable records database"):
        DoJobber().configure(Top, records=junk)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordsError, match="cannot open"):
        DoJobber().configure(Top, records=blocker / "sub" / "r.db")


def test_newer_schema_is_refused_and_steps_apply_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    RecordStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RecordsError, match="newer than this dojobber knows"):
        RecordStore(path)

    mem = sqlite3.connect(":memory:", isolation_level=None)
    done: list[int] = []
    steps = [
        lambda c: (c.execute("CREATE TABLE a (x)"), done.append(1)),
        lambda c: (c.execute("ALTER TABLE a ADD COLUMN y"), done.append(2)),
    ]
    assert migrate(mem, steps[:1]) == 1
    assert migrate(mem, steps) == 2  # an old database is brought up to date
    assert done == [1, 2]
    assert [r[1] for r in mem.execute("PRAGMA table_info(a)")] == ["x", "y"]


_CHILD = textwrap.dedent(
    """
    import sys, time
    from dojobber import DoJobber, DummyJob, Job
    from dojobber.records import RecordsListener

    path, count, pause, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

    def check(self):
        if pause:
            time.sleep(pause)

    leaves = [type(f"L{i}", (Job,), {"Check": check}) for i in range(count)]
    Root = type("Root", (Job,), {"DEPS": leaves, "Check": check})
    listener = RecordsListener(path, flush_rows=50, flush_interval=0.05)
    dj = DoJobber()
    dj.configure(Root, listeners=[listener])
    print("ready", flush=True)
    if go != "-":
        while not __import__("os").path.exists(go):
            time.sleep(0.01)
    dj.checknrun()
    print("done", listener.run_id, flush=True)
    """
)


def test_killed_run_is_marked_interrupted_on_next_open(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    child = start_python(_CHILD, str(path), "2000", "0.005", "-")
    try:
        assert read_line(child) == "ready"

        def some_jobs_written() -> bool:
            if not path.exists():
                return False
            with RecordStore(path) as store:
                runs = store.runs()
                return bool(runs) and len(store.jobs(runs[0].id)) >= 100

        wait_until(some_jobs_written, what="the child to record 100 jobs")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        finish(child)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with RecordStore(path) as store:
        (run,) = store.runs()
        assert run.outcome == "interrupted"
        assert run.pid == child.pid
        assert run.finished is not None
        # The end of the last job recorded: a wall-clock time in the run.
        assert run.started <= run.finished <= time.time()
        assert 100 <= run.ok < 2001
        assert len(store.jobs(run.id)) == run.ok


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    go = tmp_path / "go"
    children = [start_python(_CHILD, str(path), "1500", "0", str(go)) for _ in range(2)]
    try:
        for child in children:
            assert read_line(child) == "ready"
        go.write_text("go")
        ids = {int(read_line(child, timeout=60).split()[1]) for child in children}
        for child in children:
            assert child.wait(timeout=30) == 0
    finally:
        for child in children:
            finish(child)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with RecordStore(path) as store:
        runs = store.runs()
        assert {r.id for r in runs} == ids and len(ids) == 2
        for run in runs:
            assert run.outcome == "converged"
            assert run.ok == 1501 == len(store.jobs(run.id))
