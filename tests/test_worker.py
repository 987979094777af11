"""Workers carry out board requests: exactly once, surviving a killed worker,
stopping on cancel.  Real worker processes (``python -m dojobber worker``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber import RunOutcome, main
from dojobber.board import Board, open_board
from dojobber.records import RecordStore
from dojobber.worker import WorkerOptions, run_worker
from tests.fakes.procs import finish, wait_until

JOBS = textwrap.dedent('''
    import os, time
    from pathlib import Path
    from dojobber import Job

    class Mark(Job):
        """Marker file done-N exists; Run appends "N pid" to runs.log."""
        def Check(self, *, n, where, sleep="0"):
            if not (Path(where) / f"done-{n}").exists():
                raise FileNotFoundError(f"done-{n}")
        def Run(self, *, n, where, sleep="0"):
            where = Path(where)
            with open(where / "runs.log", "a") as log:
                log.write(f"{n} {os.getpid()}\\n")
            first = not (where / f"started-{n}").exists()
            (where / f"started-{n}").write_text(str(os.getpid()))
            if first:
                time.sleep(float(sleep))
            (where / f"done-{n}").write_text("")

    class Fails(Job):
        TRIES = 1
        def Check(self, **kw):
            raise RuntimeError("never converges")

    class KillsItsWorker(Job):
        def Check(self, **kw):
            os.kill(os.getpid(), 9)

    class Slow(Job):
        def Check(self, *, where):
            time.sleep(2.0)
            (Path(where) / "slow-ran").write_text("")

    class AfterSlow(Job):
        DEPS = [Slow]
        def Check(self, *, where):
            if not (Path(where) / "after").exists():
                raise FileNotFoundError("after")
        def Run(self, *, where):
            (Path(where) / "after").write_text("")
''')


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The board: a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "board.sqlite3")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def setup(tmp_path: Path, location: str) -> Iterator[tuple[Path, Board, Path]]:
    jobs = tmp_path / "jobs.py"
    jobs.write_text(JOBS)
    (tmp_path / "board.location").write_text(location)
    board = open_board(location)
    yield jobs, board, tmp_path
    board.close()


def worker(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DOJOBBER_BOARD": (tmp_path / "board.location").read_text(),
           "DOJOBBER_RECORDS": str(tmp_path / "records.sqlite3")}
    return subprocess.Popen(
        [sys.executable, "-m", "dojobber", "worker", "--poll", "0.1", *extra],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_run_every_request_exactly_once(
        setup: tuple[Path, Board, Path]) -> None:
    jobs, board, tmp = setup
    ids = [board.post(f"{jobs}:Mark", (), {"n": str(n), "where": str(tmp)}).id
           for n in range(50)]
    procs = [worker(tmp, "--once"), worker(tmp, "--once")]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    lines = (tmp / "runs.log").read_text().split()
    numbers = lines[0::2]
    assert sorted(numbers, key=int) == [str(n) for n in range(50)]  # each ran once
    assert len(set(lines[1::2])) == 2  # and both workers took part
    requests = [board.get(i) for i in ids]
    assert all(r.state == "done" and r.attempts == 1 and len(r.runs) == 1 for r in requests)


@pytest.mark.slow
def test_killed_worker_request_is_claimed_again_after_its_lease(
        setup: tuple[Path, Board, Path]) -> None:
    jobs, board, tmp = setup
    rid = board.post(f"{jobs}:Mark", (), {"n": "7", "where": str(tmp), "sleep": "60"},
                     max_attempts=2).id
    first = worker(tmp, "--lease", "2")
    try:
        wait_until((tmp / "started-7").exists, 60, "the first worker to start the job")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        finish(first)
    assert board.get(rid).state == "claimed"  # the dead worker's claim, not yet expired
    wait_until(lambda: (board.get(rid).lease_until or 0) < time.time(), 30, "the lease to expire")
    second = worker(tmp, "--lease", "2", "--once")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    req = board.get(rid)
    assert req.state == "done" and req.attempts == 2
    # the job's Run ran again (its Check found it not done), once more only
    assert (tmp / "runs.log").read_text().split()[0::2] == ["7", "7"]
    # nothing is done twice after it completed
    third = worker(tmp, "--once")
    _, err = third.communicate(timeout=60)
    assert "0 request(s)" in err
    assert board.get(rid).state == "done"


def test_cancel_while_claimed_stops_after_the_current_job(
        setup: tuple[Path, Board, Path]) -> None:
    import dojobber.cli  # noqa: F401 (imported now: the cancel below must come quickly)
    from dojobber.loader import load_root

    jobs, board, tmp = setup
    rid = board.post(f"{jobs}:AfterSlow", (), {"where": str(tmp)}).id
    stop = threading.Event()
    options = WorkerOptions(lease=0.6, poll=0.05, records=tmp / "records.sqlite3")
    thread = threading.Thread(target=run_worker, args=(board, options, stop, load_root))
    thread.start()
    try:
        wait_until(lambda: board.get(rid).state == "claimed", 30, "the claim")
        assert main(["cancel", str(rid), "--board", (tmp / "board.location").read_text()]) == 0
        wait_until(lambda: board.get(rid).state != "claimed", 30, "the worker to stop")
    finally:
        stop.set()
        thread.join(timeout=30)
    req = board.get(rid)
    assert req.state == "cancelled" and len(req.runs) == 1
    assert (tmp / "slow-ran").exists()  # the running job finished
    assert not (tmp / "after").exists()  # the next one never started
    assert (req.outcome or "").startswith("AfterSlow: stopped before the end (1 ok)")
    with RecordStore(tmp / "records.sqlite3") as store:  # the records agree
        (run,) = store.runs()
    assert (run.outcome, run.ok, run.failed) == ("stopped", 1, 0)
    assert run.verdict is RunOutcome.STOPPED


def test_cli_post_board_cancel_and_errors(
        setup: tuple[Path, Board, Path], capsys: pytest.CaptureFixture[str]) -> None:
    jobs, board, tmp = setup
    where = ["--board", (tmp / "board.location").read_text()]
    assert main(["post", f"{jobs}:Mark", "--arg", "n=1", "--arg", f"where={tmp}", *where]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["post", f"{jobs}:Mark", "--arg", "n=1", "--arg", f"where={tmp}", *where]) == 0
    assert "not queued twice" in capsys.readouterr().out
    assert main(["board", *where]) == 0
    assert "waiting" in capsys.readouterr().out
    assert main(["cancel", first, *where]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert board.get(int(first)).state == "cancelled"
    # errors: a target that does not load, a corrupt board, an unknown id
    assert main(["post", f"{jobs}:Nope", *where]) == 2
    assert "Nope" in capsys.readouterr().err
    bad = tmp / "corrupt.sqlite3"
    bad.write_bytes(b"not a database at all" * 64)
    assert main(["board", "--board", str(bad)]) == 2
    assert "not a database" in capsys.readouterr().err
    assert main(["cancel", "999", *where]) == 2
    assert "no request 999" in capsys.readouterr().err
    # --retry-delay: seconds, a duration, or a growing backoff
    assert main(["post", f"{jobs}:Mark", "--arg", "n=2", "--max-attempts", "3",
                 "--retry-delay", "1m..1h", *where]) == 0
    policy = board.get(int(capsys.readouterr().out.strip())).retry_backoff
    assert policy is not None and (policy.initial, policy.max) == (60, 3600)
    assert main(["post", f"{jobs}:Mark", "--arg", "n=3", "--retry-delay", "5m", *where]) == 0
    assert board.get(int(capsys.readouterr().out.strip())).retry_delay == 300
    assert main(["post", f"{jobs}:Mark", "--retry-delay", "1h..1m", *where]) == 2
    assert "MAX is below INITIAL" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["records", "lock"])
def test_a_misconfigured_worker_claims_nothing_and_says_so_in_one_line(
        setup: tuple[Path, Board, Path], bad: str) -> None:
    jobs, board, tmp = setup
    ids = [board.post(f"{jobs}:Mark", (), {"n": str(n), "where": str(tmp)}).id
           for n in range(3)]
    (tmp / "plain").write_text("a plain file, not a directory")
    option = ["--records", str(tmp / "plain" / "records.db")] if bad == "records" else \
        ["--lock", str(tmp / "plain" / "{root}.lock")]
    proc = worker(tmp, "--once", *option)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("Error: worker not started: ") and "plain" in line
    for rid in ids:  # nothing claimed, nothing failed
        req = board.get(rid)
        assert (req.state, req.attempts) == ("waiting", 0)


def test_once_reports_each_request_and_exits_1_after_a_failure(
        setup: tuple[Path, Board, Path]) -> None:
    jobs, board, tmp = setup
    good = board.post(f"{jobs}:Mark", (), {"n": "1", "where": str(tmp)}).id
    bad = board.post(f"{jobs}:Fails").id
    proc = worker(tmp, "--once")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert any(line.startswith(f"request {good} {jobs}:Mark: done: ") and "(run " in line
               for line in lines), err
    assert any(line.startswith(f"request {bad} {jobs}:Fails: failed: ") for line in lines), err
    assert lines[-1] == "worker done: 2 request(s) carried out, 1 failed"


def test_a_request_that_kills_its_worker_fails_after_max_attempts(
        setup: tuple[Path, Board, Path]) -> None:
    from dojobber.cli.board import _state

    jobs, board, tmp = setup
    rid = board.post(f"{jobs}:KillsItsWorker", max_attempts=2).id
    for attempt in (1, 2):
        proc = worker(tmp, "--once", "--lease", "1")
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        req = board.get(rid)
        assert (req.state, req.attempts) == ("claimed", attempt)
        wait_until(lambda: (board.get(rid).lease_until or 0) < time.time(), 30, "the lease")
    last = worker(tmp, "--once", "--lease", "1")
    _, err = last.communicate(timeout=60)
    assert last.returncode == 0 and "0 request(s)" in err
    req = board.get(rid)
    assert (req.state, req.attempts, req.max_attempts) == ("failed", 2, 2)
    assert "worker was lost" in (req.outcome or "")
    assert _state(req) == "failed"
