"""Run records on a real PostgreSQL server: the same reading interface as
SQLite, runs of several hosts in one history with distinct ids, a killed
run's finished jobs kept, foreign databases refused, passwords kept out."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import psycopg
import pytest

from dojobber import DoJobber, Job, main
from dojobber.records import RecordsError, open_store, stored_run
from tests.fakes.postgres import PASSWORD
from tests.fakes.procs import finish, read_line, start_python, wait_until
from tests.test_records import Top


def _run(location: str) -> DoJobber:
    dj = DoJobber()
    dj.configure(Top, records=location)
    dj.set_args(user="ann", api_token="s3cret", nested={"password": "pw", "n": 1})
    dj.checknrun()
    assert dj.records is not None
    dj.records.close()
    return dj


def _comparable(location: str, run_id: int) -> dict[str, object]:
    """What a store says about a run, less what differs between two runs
    (ids, times, pid)."""
    store = open_store(location)
    try:
        run = asdict(store.run(run_id))
        for key in ("id", "started", "finished", "pid", "script", "argv"):
            run.pop(key)
        jobs = [asdict(j) for j in store.jobs(run_id)]
        for job in jobs:
            job.pop("run_id"), job.pop("started"), job.pop("duration")
            job["traceback"] = bool(job["traceback"])
            job["phases"] = [(p[0], p[1], p[4], p[5]) for p in job["phases"]]
        logs = [(ln.job, ln.phase, ln.attempt, ln.level, ln.logger, ln.message)
                for ln in store.logs(run_id)]
        graph, result = stored_run(store, run_id)
        return {"run": run, "jobs": jobs, "logs": logs, "graph": (graph.names, graph.deps),
                "statuses": {res.name: res.status.value for res in result},
                "broken": store.job(run_id, "Broken").exception}
    finally:
        store.close()


def test_postgres_stores_what_sqlite_stores(pg_url: str, tmp_path: Path) -> None:
    sqlite = str(tmp_path / "records.sqlite3")
    on_sqlite, on_postgres = _run(sqlite), _run(pg_url)
    assert on_postgres.records is not None and on_sqlite.records is not None
    pg_id, lite_id = on_postgres.records.run_id, on_sqlite.records.run_id
    assert pg_id is not None and lite_id is not None
    got = _comparable(pg_url, pg_id)
    assert got == _comparable(sqlite, lite_id)
    assert got["statuses"] == {"Fetch": "changed", "Broken": "failed", "Top": "blocked"}
    assert got["broken"] == "RuntimeError: Broken is broken"
    store = open_store(pg_url)
    try:
        assert [r.id for r in store.runs()] == [pg_id]
        assert store.resolve("last") == store.resolve(-1) == pg_id
        assert store.runs(root="Nope") == []
        with pytest.raises(RecordsError, match="no run 999"):
            store.run(999)
        with pytest.raises(RecordsError, match="no job 'Nope'"):
            store.job(pg_id, "Nope")
        # a second run of the same graph shares its stored copy
        again = _run(pg_url)
        assert again.records is not None and again.records.run_id == pg_id + 1
        assert store.graph_data(pg_id) == store.graph_data(pg_id + 1)
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM records_graphs").fetchone() == (1,)


_AS_HOST = textwrap.dedent(
    """
    import socket, sys
    socket.gethostname = lambda: sys.argv[1]   # this process's host name
    from dojobber import main
    raise SystemExit(main(sys.argv[2:]))
    """
)


def _jobs_file(tmp_path: Path) -> Path:
    jobs = tmp_path / "site.py"
    jobs.write_text(textwrap.dedent(
        """
        from dojobber import Job
        class Leaf(Job):
            def Check(self, **kw):
                pass
        class Site(Job):
            DEPS = [Leaf]
            def Check(self, **kw):
                pass
        """))
    return jobs


def test_runs_of_two_hosts_in_one_history_with_distinct_ids(
        pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = _jobs_file(tmp_path)
    pids = {}
    for host in ("alpha", "beta", "alpha"):
        proc = subprocess.run(
            [sys.executable, "-c", _AS_HOST, host, "run", f"{jobs}:Site", "--records", pg_url,
             "--json", "-a", "token=t0ps3cret"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        run_id = json.loads(proc.stdout)["run_id"]
        pids[run_id] = host
    store = open_store(pg_url)
    try:
        runs = store.runs()
        assert sorted(r.id for r in runs) == sorted(pids)  # three distinct ids
        assert {r.id: r.host for r in runs} == pids
        beta = next(r for r in runs if r.host == "beta")
        assert store.resolve(f"beta:{beta.pid}") == beta.id
        # neither the URL's password nor the secret argument was stored
        for run in runs:
            text = json.dumps(asdict(run))
            assert PASSWORD not in text and "t0ps3cret" not in text
            assert any("dojo:***@" in word for word in run.argv)
    finally:
        store.close()
    assert main(["history", "--records", pg_url]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert all(str(rid) in out for rid in pids)
    assert main(["show", str(beta.id), "--records", pg_url]) == 0
    assert "beta" in capsys.readouterr().out


_CHILD = textwrap.dedent(
    """
    import sys, time
    from dojobber import DoJobber, Job

    def check(self):
        time.sleep(0.005)

    leaves = [type(f"L{i}", (Job,), {"Check": check}) for i in range(2000)]
    Root = type("Root", (Job,), {"DEPS": leaves, "Check": check})
    dj = DoJobber()
    dj.configure(Root, records=sys.argv[1])
    print("ready", flush=True)
    dj.checknrun()
    """
)


def test_killed_run_keeps_its_finished_jobs_and_is_marked_interrupted(pg_url: str) -> None:
    child = start_python(_CHILD, pg_url)
    try:
        assert read_line(child) == "ready"
        store = open_store(pg_url)

        def some_jobs_written() -> bool:
            runs = store.runs()
            return bool(runs) and len(store.jobs(runs[0].id)) >= 100

        wait_until(some_jobs_written, what="the child to record 100 jobs")
        before = len(store.jobs("last"))
        store.close()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        finish(child)
    store = open_store(pg_url)  # this host's dead runs are reaped at open
    try:
        (run,) = store.runs()
        assert run.outcome == "interrupted" and run.pid == child.pid
        assert before <= run.ok == len(store.jobs(run.id)) < 2001
        assert run.finished is not None and run.started <= run.finished
    finally:
        store.close()


def test_a_database_that_is_not_ours_is_refused_untouched(postgres_server: object,
                                                          pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO customers VALUES (1, 'ann')")
    with pytest.raises(RecordsError, match=r"not a records database: .*customers") as info:
        open_store(pg_url)
    assert PASSWORD not in str(info.value) and "dojo:***@" in str(info.value)
    with pytest.raises(RecordsError, match="customers"):
        DoJobber().configure(Top, records=pg_url)
    with psycopg.connect(pg_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert tables == ["customers"]


def test_newer_schema_refused_and_board_shares_the_database(pg_url: str) -> None:
    from dojobber.board import BoardError, open_board

    open_store(pg_url).close()
    board = open_board(pg_url)  # board and records in one database
    assert board.post("a:A").id == 1
    board.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE dojobber_meta SET version = 99")
    with pytest.raises(RecordsError, match="version 99, newer"):
        open_store(pg_url)
    with pytest.raises(BoardError, match="version 99, newer"):
        open_board(pg_url)


def test_wrong_password_and_no_server_are_clear_and_masked(
        postgres_server: object, pg_url: str) -> None:
    wrong = pg_url.replace(PASSWORD, "not-the-password")
    with pytest.raises(RecordsError, match="password authentication failed") as info:
        from dojobber.records.postgres import PostgresRecordStore

        PostgresRecordStore(wrong, retry_for=0)
    assert "not-the-password" not in str(info.value)
    assert "not-the-password" not in repr(info.value.__cause__)


def test_older_schema_upgraded_and_deleting_a_run_deletes_its_rows(pg_url: str) -> None:
    from dojobber._postgres import PostgresLink
    from dojobber.records.postgres import _TABLES, MIGRATIONS

    def error(message: str) -> Exception:
        return RuntimeError(message)

    link = PostgresLink(pg_url, error)
    try:  # the tables as dojobber wrote them before the per-row foreign keys went
        link.ensure_schema("records", MIGRATIONS[:2], _TABLES)
    finally:
        link.close()
    first, second = _run(pg_url).records, _run(pg_url).records  # (opening upgrades)
    assert first is not None and second is not None
    kept, gone = first.run_id, second.run_id
    assert kept is not None and gone is not None
    tables = ("records_jobs", "records_job_details", "records_logs")

    def rows(conn: psycopg.Connection[tuple[int]], run_id: int) -> list[int]:
        counts = [conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s",
                               (run_id,)).fetchone() for table in tables]
        return [row[0] for row in counts if row is not None]

    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM dojobber_meta WHERE part = 'records'"
                            ).fetchone() == (len(MIGRATIONS),)
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid = ANY(%s::regclass[])", (list(tables),)).fetchone() == (0,)
        before = rows(conn, kept)
        assert all(before) and rows(conn, gone) == before  # jobs, details and logs
        conn.execute("DELETE FROM records_runs WHERE id = %s", (gone,))
        assert rows(conn, gone) == [0, 0, 0]
        assert rows(conn, kept) == before
    with open_store(pg_url) as store:
        assert store.job(kept, "Broken").exception is not None


class NulBytes(Job):
    """Logs a line, fails and plans with NUL bytes in the text (a command's
    binary output, say)."""

    def Check(self) -> None:
        logging.getLogger("nul\x00logger").warning("bad \x00 byte")
        raise RuntimeError("err \x00 here")

    def Plan(self) -> str:
        return "would \x00 write"


@pytest.mark.parametrize("no_act", [False, True])
def test_nul_bytes_in_text_do_not_lose_the_run(pg_url: str, no_act: bool) -> None:
    dj = DoJobber()
    dj.configure(NulBytes, records=pg_url, default_tries=1, no_act=no_act)
    dj.checknrun()  # (a failed write would detach the records listener, loudly)
    assert dj.records is not None
    dj.records.close()
    with open_store(pg_url) as store:
        run = store.run("last")
        assert run.outcome == ("changes_pending" if no_act else "not_converged")
        job = store.job(run.id, "NulBytes")
        assert job.exception == "RuntimeError: err \\x00 here"
        if no_act:
            assert job.plan == "would \\x00 write"
        logs = [(line.logger, line.message) for line in store.logs(run.id)]
        assert ("nul\\x00logger", "bad \\x00 byte") in logs
