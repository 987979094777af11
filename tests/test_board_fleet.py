"""Workers as on a fleet, against a real PostgreSQL server: woken by NOTIFY,
a skewed clock, the database restarted mid-run, roots from an installed
package and roots a worker cannot load.  Real ``dojobber worker`` processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber.board import Board, open_board
from dojobber.records import open_store
from tests.fakes.postgres import PostgresServer
from tests.fakes.procs import child_env, wait_until

#: A package the workers import (PYTHONPATH), as a fleet installs its jobs.
SITE = textwrap.dedent('''
    import os, time
    from pathlib import Path
    from dojobber import Job

    class Mark(Job):
        """done-N exists; Run appends "N pid" to runs.log (after ``sleep`` s)."""
        def Check(self, *, n, where, sleep=0):
            if not (Path(where) / f"done-{n}").exists():
                raise FileNotFoundError(f"done-{n}")
        def Run(self, *, n, where, sleep=0):
            where = Path(where)
            (where / f"started-{n}").write_text(str(os.getpid()))
            time.sleep(float(sleep))
            with open(where / "runs.log", "a") as log:
                log.write(f"{n} {os.getpid()}\\n")
            (where / f"done-{n}").write_text("")
''')

#: ``python -c`` for a worker whose clock (time.time) is off by argv[1] seconds.
SKEWED = textwrap.dedent('''
    import sys, time
    _real = time.time
    offset = float(sys.argv[1])
    time.time = lambda: _real() + offset
    from dojobber import main
    raise SystemExit(main(sys.argv[2:]))
''')


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, Board, str]]:
    package = tmp_path / "pkgs" / "fleetjobs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "site.py").write_text(SITE)
    board = open_board(pg_url)
    yield tmp_path, board, pg_url
    board.close()


def worker(tmp: Path, url: str, *extra: str, skew: float | None = None,
           records: bool = False) -> subprocess.Popen[str]:
    env = child_env(DOJOBBER_BOARD=url,
                    DOJOBBER_RECORDS=url if records else str(tmp / "records.sqlite3"))
    env["PYTHONPATH"] = f"{tmp / 'pkgs'}:{env['PYTHONPATH']}"
    argv = ["worker", "--poll", "0.2", *extra]
    head = ["-c", SKEWED, str(skew)] if skew is not None else ["-m", "dojobber"]
    return subprocess.Popen([sys.executable, *head, *argv], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(*procs: subprocess.Popen[str]) -> list[str]:
    """SIGTERM (a worker finishes what it runs, then exits); their stderr."""
    errs = []
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        errs.append(err)
    return errs


def mark(board: Board, tmp: Path, n: int, sleep: float = 0, **post: int) -> int:
    return board.post("fleetjobs.site:Mark", (), {"n": n, "where": str(tmp), "sleep": sleep},
                      **post).id


def runs_log(tmp: Path) -> list[int]:
    path = tmp / "runs.log"
    return [int(line.split()[0]) for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_idle_worker_is_woken_by_notify_not_by_polling(fleet: tuple[Path, Board, str]) -> None:
    tmp, board, url = fleet
    # polling every ten minutes: only NOTIFY can make it start within the test
    proc = worker(tmp, url, "--poll", "600")
    try:
        wait_until(lambda: _listening(url), timeout=60, what="the worker to LISTEN")
        rid = mark(board, tmp, 1)
        wait_until(lambda: board.get(rid).state == "done", timeout=60,
                   what="the woken worker to carry out the request")
    finally:
        stop(proc)
    assert runs_log(tmp) == [1]


def _listening(url: str) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query = "
                           "'LISTEN dojobber_board'").fetchone()
    return bool(row and row[0])


def test_a_skewed_clock_neither_steals_nor_keeps_a_lease(fleet: tuple[Path, Board, str]) -> None:
    tmp, board, url = fleet
    slow = mark(board, tmp, 1, sleep=6)
    honest = worker(tmp, url, "--lease", "2")
    try:
        wait_until((tmp / "started-1").exists, timeout=60, what="the first run to start")
        # ten minutes ahead: by its own clock the 2 s lease ran out long ago
        ahead = worker(tmp, url, "--once", "--lease", "2", skew=600)
        _, err = ahead.communicate(timeout=60)
        assert ahead.returncode == 0, err
        assert "0 request(s)" in err  # it took nothing
        wait_until(lambda: board.get(slow).state == "done", timeout=60, what="request 1")
    finally:
        stop(honest)
    # and the other way: a worker ten minutes behind holds a claim by the server's clock
    late = mark(board, tmp, 2, sleep=6)
    behind = worker(tmp, url, "--lease", "2", skew=-600)
    try:
        wait_until((tmp / "started-2").exists, timeout=60, what="the second run to start")
        other = worker(tmp, url, "--once", "--lease", "2")
        _, err = other.communicate(timeout=60)
        assert "0 request(s)" in err, err
        wait_until(lambda: board.get(late).state == "done", timeout=60, what="request 2")
    finally:
        stop(behind)
    assert sorted(runs_log(tmp)) == [1, 2]  # each ran once
    assert board.get(slow).attempts == board.get(late).attempts == 1


def test_database_restart_during_a_run_loses_nothing_and_repeats_nothing(
        fleet: tuple[Path, Board, str], postgres_server: PostgresServer) -> None:
    tmp, board, url = fleet
    ids = [mark(board, tmp, n, sleep=0.3) for n in range(24)]
    procs = [worker(tmp, url, "--lease", "5", records=True) for _ in range(2)]
    try:
        wait_until(lambda: len(runs_log(tmp)) >= 4, timeout=120, what="a few runs to finish")
        board.close()
        postgres_server.restart(down=2.0)
        try:
            wait_until(lambda: all(board.get(i).state == "done" for i in ids), timeout=240,
                       what="every request to be done after the restart")
        except AssertionError:
            states = [(r.id, r.state, r.attempts, r.outcome) for r in board.requests()]
            raise AssertionError(f"{states}\n" + "\n".join(stop(*procs))) from None
    finally:
        errs = stop(*procs)
    assert all(proc.returncode == 0 for proc in procs), errs
    assert sorted(runs_log(tmp)) == list(range(24))  # none lost, none done twice
    store = open_store(url)
    try:
        runs = store.runs(limit=100)
        finished = [r for r in runs if r.outcome != "running"]
        assert len(finished) == len(runs) >= 24
    finally:
        store.close()


def test_roots_from_an_installed_package_and_a_root_a_worker_cannot_load(
        fleet: tuple[Path, Board, str]) -> None:
    tmp, board, url = fleet
    missing = board.post("not_installed_here.site:Mark", (), {}, priority=1).id
    good = mark(board, tmp, 5)
    proc = worker(tmp, url, "--once")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # worker --once: a request failed
    failed = board.get(missing)
    assert failed.state == "failed"
    assert "cannot start" in (failed.outcome or "")
    assert "not_installed_here" in (failed.outcome or "")
    assert board.get(good).state == "done"  # the worker went on
    assert runs_log(tmp) == [5]


def test_worker_checks_postgresql_records_without_making_a_file(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking a worker's records URL opens the database, never a SQLite
    file named after the URL (with its password in the name)."""
    from dojobber.board.worker import WorkerOptions, check_options

    monkeypatch.chdir(tmp_path)
    check_options(WorkerOptions(records=pg_url))
    assert list(tmp_path.iterdir()) == []
    with open_store(pg_url) as store:
        assert store.runs() == []  # the records tables are there, empty
