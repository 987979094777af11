"""Fault injection: real signals to real processes at chosen moments of a
run, a worker and a download, with records on.  Afterwards the records open
(``PRAGMA integrity_check``), show what happened, and a rerun converges.

See docs/faults.rst for what a run guarantees under each fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber.records import RecordStore
from tests.fakes.procs import child_env, wait_until

#: A graph of 20 quick jobs, then ``Slow`` (its Check fails until a marker
#: file exists; its Run writes "slow running" to the marker's directory and
#: sleeps ``SLOW_SECONDS``, then creates the marker), then ``Root``.
SCRIPT = textwrap.dedent(
    '''
    import logging, os, time
    from dojobber import Job

    HERE = os.environ["FAULT_DIR"]
    log = logging.getLogger("faults")


    def _quick(n):
        def check(self, **kw):
            log.info("quick %d checked", n)
        return type(f"Quick{n}", (Job,), {"Check": check})


    QUICK = [_quick(n) for n in range(20)]


    class Slow(Job):
        DEPS = QUICK

        def Check(self, **kw):
            if not os.path.exists(os.path.join(HERE, "slow.done")):
                raise RuntimeError("slow not done yet")

        def Run(self, **kw):
            open(os.path.join(HERE, "slow.running"), "w").close()
            time.sleep(float(os.environ.get("SLOW_SECONDS", "60")))
            open(os.path.join(HERE, "slow.done"), "w").close()


    class Root(Job):
        DEPS = [Slow]

        def Check(self, **kw):
            pass
    '''
)


def dojobber_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dojobber", *args]


@pytest.fixture
def faultdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "jobs.py").write_text(SCRIPT)
    yield tmp_path


def start(faultdir: Path, *args: str, slow: float = 60.0) -> subprocess.Popen[str]:
    """``python -m dojobber ARGS`` in its own process group (so that the
    test can end what it leaves behind), its output dropped."""
    return subprocess.Popen(
        dojobber_cmd(*args), cwd=faultdir, text=True, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env(FAULT_DIR=str(faultdir), SLOW_SECONDS=str(slow)),
    )


def end_group(child: subprocess.Popen[str]) -> None:
    """SIGKILL the child's whole process group (pool workers included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    with child:  # closes its pipes (left open: a ResourceWarning)
        pass


def run_to_end(faultdir: Path, *args: str, slow: float = 0.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dojobber_cmd(*args), cwd=faultdir, text=True, capture_output=True, timeout=120,
        env=child_env(FAULT_DIR=str(faultdir), SLOW_SECONDS=str(slow)),
    )


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def rows_on_disk(path: Path) -> tuple[int, int]:
    """(job rows, log lines) of the newest run, read by another connection."""
    if not path.exists():
        return 0, 0
    conn = sqlite3.connect(path, timeout=10)
    try:
        row = conn.execute("SELECT MAX(id) FROM runs").fetchone()
        if row is None or row[0] is None:
            return 0, 0
        jobs = conn.execute("SELECT COUNT(*) FROM jobs WHERE run_id = ?", row).fetchone()[0]
        logs = conn.execute("SELECT COUNT(*) FROM logs WHERE run_id = ?", row).fetchone()[0]
        return int(jobs), int(logs)
    except sqlite3.OperationalError:  # not created yet
        return 0, 0
    finally:
        conn.close()


def test_sigkill_during_a_long_job_keeps_the_jobs_that_finished(faultdir: Path) -> None:
    records = faultdir / "records.db"
    child = start(faultdir, "run", "jobs.py:Root", "--records", str(records))
    try:
        wait_until(lambda: (faultdir / "slow.running").exists(), what="Slow to run")
        # While Slow sleeps nothing else happens in the run: the 20 quick
        # jobs that finished (and their log lines) reach the disk by the
        # records' timer, not by a later event.
        wait_until(lambda: rows_on_disk(records) == (20, 20), timeout=15,
                   what="the 20 finished jobs and their logs on disk")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        end_group(child)
    assert integrity(records) == "ok"
    with RecordStore(records) as store:  # opening it marks the dead run
        (run,) = store.runs()
        assert run.outcome == "interrupted"
        jobs = store.jobs(run.id)
        assert sorted(j.name for j in jobs) == sorted(f"Quick{n}" for n in range(20))
        assert {j.status for j in jobs} == {"ok"}
        assert len(store.logs(run.id)) == 20
    # The rerun does the rest and converges.
    done = run_to_end(faultdir, "run", "jobs.py:Root", "--records", str(records))
    assert done.returncode == 0, done.stderr
    with RecordStore(records) as store:
        last = store.run("last")
        assert last.outcome == "converged"
        assert store.job(last.id, "Slow").status == "changed"


POOL_SCRIPT = textwrap.dedent(
    '''
    import os, time
    from dojobber import Job

    HERE = os.environ["FAULT_DIR"]


    class Sleeper(Job):
        def Check(self, **kw):
            if not os.path.exists(os.path.join(HERE, "slept")):
                raise RuntimeError("not slept yet")

        def Run(self, **kw):
            with open(os.path.join(HERE, "worker.pid"), "w") as f:
                f.write(str(os.getpid()))
            time.sleep(float(os.environ.get("SLOW_SECONDS", "60")))
            open(os.path.join(HERE, "slept"), "w").close()


    class PoolRoot(Job):
        DEPS = [Sleeper]

        def Check(self, **kw):
            pass
    '''
)


def test_the_run_lock_dies_with_its_holder_not_with_its_pool_workers(tmp_path: Path) -> None:
    from dojobber.lock import RunLock

    (tmp_path / "pool_jobs.py").write_text(POOL_SCRIPT)
    lock = tmp_path / "run.lock"
    child = start(tmp_path, "run", "pool_jobs.py:PoolRoot", "--executor", "processes:2",
                  "--lock", str(lock), "--no-records")
    orphan = 0
    try:
        wait_until(lambda: (tmp_path / "worker.pid").exists()
                   and (tmp_path / "worker.pid").read_text(), what="the pool worker")
        orphan = int((tmp_path / "worker.pid").read_text())
        assert orphan != child.pid
        child.send_signal(signal.SIGKILL)  # the holder dies; its pool worker sleeps on
        child.wait(timeout=10)
        os.kill(orphan, 0)  # (still alive)
        # The lock is free at once: the orphan did not keep it.
        with RunLock(lock, timeout=0):
            pass
    finally:
        end_group(child)


DOWNLOAD_SCRIPT = textwrap.dedent(
    '''
    import sys
    from dojobber import main
    from dojobber.contrib.download import Download

    Get = Download.variant("Get", url=sys.argv[1], dest_dir=sys.argv[2])
    raise SystemExit(main(Get, sys.argv[3:]))
    '''
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM],
                         ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_a_signal_during_a_download(tmp_path: Path, sig: signal.Signals) -> None:
    from tests.fakes.obs import FakeObs

    data = os.urandom(3 << 20)
    path = "repositories/faults/images/disk.qcow2"
    dest = tmp_path / "images"
    records = tmp_path / "records.db"
    (tmp_path / "get.py").write_text(DOWNLOAD_SCRIPT)
    with FakeObs() as fake:
        fake.put_file(path, data)
        fake.put_file(path + ".sha256",
                      f"{hashlib.sha256(data).hexdigest()}  disk.qcow2\n".encode())
        fake.pace[path] = 0.05  # ~1.3 MB/s: a download that takes a few seconds
        argv = [sys.executable, "get.py", fake.url(path), str(dest), "--records", str(records)]
        child = subprocess.Popen(argv, cwd=tmp_path, env=child_env(), start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        part = dest / ".disk.qcow2.part"
        try:
            wait_until(lambda: part.exists() and part.stat().st_size > 256 << 10,
                       what="the download to be under way")
            child.send_signal(sig)
            _, err = child.communicate(timeout=60)
        finally:
            end_group(child)
        expected = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 0}
        assert child.returncode == expected[sig], err
        assert integrity(records) == "ok"
        with RecordStore(records) as store:
            first = store.run("last")
            if sig == signal.SIGTERM:  # stops after the running attempt: it finishes
                assert first.outcome == "converged"
                assert (dest / "disk.qcow2").read_bytes() == data
            else:  # nothing half-written at the final path
                assert first.outcome == "interrupted"
                assert not (dest / "disk.qcow2").exists()
        # The rerun resumes (or finds the file done) and converges.
        del fake.pace[path]
        again = subprocess.run(argv, cwd=tmp_path, env=child_env(), capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert (dest / "disk.qcow2").read_bytes() == data
        statuses = [r.status for r in fake.requests_for(path, "GET")]
        assert statuses == ([200] if sig == signal.SIGTERM else [200, 206])
    with RecordStore(records) as store:
        assert store.run("last").outcome == "converged"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_during_a_long_job(faultdir: Path, sig: signal.Signals) -> None:
    records = faultdir / "records.db"
    child = start(faultdir, "run", "jobs.py:Root", "--records", str(records), slow=3.0)
    try:
        wait_until(lambda: (faultdir / "slow.running").exists(), what="Slow to run")
        child.send_signal(sig)
        code = child.wait(timeout=60)
    finally:
        end_group(child)
    from dojobber.cli import EXIT_INTERRUPTED, EXIT_STOPPED

    assert integrity(records) == "ok"
    with RecordStore(records) as store:
        run = store.run("last")
        names = {j.name: j.status for j in store.jobs(run.id)}
    assert {f"Quick{n}" for n in range(20)} <= set(names)
    if sig == signal.SIGINT:  # Ctrl-C: the sleeping Run is interrupted at once
        assert (code, run.outcome) == (EXIT_INTERRUPTED, "interrupted")
        assert not (faultdir / "slow.done").exists()
    else:  # SIGTERM: the running attempt finishes, nothing new starts
        assert (code, run.outcome) == (EXIT_STOPPED, "stopped")
        assert names["Slow"] == "changed" and "Root" not in names
    done = run_to_end(faultdir, "run", "jobs.py:Root", "--records", str(records))
    assert done.returncode == 0, done.stderr
    with RecordStore(records) as store:
        assert store.run("last").outcome == "converged"


def test_sigstop_of_a_worker_past_its_lease_then_sigcont(tmp_path: Path) -> None:
    from dojobber.board import SQLiteBoard
    from tests.test_worker import JOBS

    (tmp_path / "wjobs.py").write_text(JOBS)
    board = SQLiteBoard(tmp_path / "board.db")
    records = tmp_path / "records.db"
    rid = board.post(f"{tmp_path / 'wjobs.py'}:Mark", (),
                     {"n": "1", "where": str(tmp_path), "sleep": "4"}, max_attempts=2).id

    def worker(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            dojobber_cmd("worker", "--board", str(board.path), "--records", str(records),
                         "--lease", "1", "--poll", "0.1", *extra),
            cwd=tmp_path, env=child_env(), start_new_session=True, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    first = worker()
    second = None
    try:
        wait_until((tmp_path / "started-1").exists, what="the first worker to run the job")
        first.send_signal(signal.SIGSTOP)  # stalled longer than its lease
        wait_until(lambda: (board.get(rid).lease_until or 0) < time.time(), what="the lease")
        second = worker("--once")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        taken = board.get(rid)
        assert (taken.state, taken.attempts, len(taken.runs)) == ("done", 2, 1)
        first.send_signal(signal.SIGCONT)  # it wakes, finds its claim lost, stops the run
        first.send_signal(signal.SIGTERM)  # and exits when asked
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    finally:
        end_group(first)
        if second is not None:
            end_group(second)
    req = board.get(rid)
    assert (req.state, req.attempts, len(req.runs)) == ("done", 2, 1)  # the late one not kept
    assert integrity(records) == "ok"
    with RecordStore(records) as store:
        runs = store.runs()
    assert len(runs) == 2 and {r.outcome for r in runs} <= {"converged", "stopped"}


THREADS_SCRIPT = textwrap.dedent(
    '''
    import os, time
    from dojobber import Job

    HERE = os.environ["FAULT_DIR"]


    def mark(name):
        open(os.path.join(HERE, name), "w").close()


    class Done(Job):
        def Check(self, **kw):
            pass

        def Cleanup(self):
            mark("done.cleaned")


    class Sleeper(Job):
        def Check(self, **kw):
            if not os.path.exists(os.path.join(HERE, "slept")):
                raise RuntimeError("not slept yet")

        def Run(self, **kw):
            mark("sleeper.running")
            time.sleep(float(os.environ.get("SLOW_SECONDS", "60")))
            mark("slept")

        def Cleanup(self):
            mark("sleeper.cleaned")


    class Root(Job):
        DEPS = [Done, Sleeper]

        def Check(self, **kw):
            pass
    '''
)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_with_workers_stops_scheduling_and_a_second_abandons(
        tmp_path: Path, presses: int) -> None:
    (tmp_path / "tjobs.py").write_text(THREADS_SCRIPT)
    records = tmp_path / "records.db"
    slow = 4.0 if presses == 1 else 60.0
    child = subprocess.Popen(
        dojobber_cmd("run", "tjobs.py:Root", "--workers", "4", "--records", str(records)),
        cwd=tmp_path, text=True, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(FAULT_DIR=str(tmp_path), SLOW_SECONDS=str(slow)))
    try:
        wait_until((tmp_path / "sleeper.running").exists, what="Sleeper to run")
        child.send_signal(signal.SIGINT)
        assert child.stderr is not None
        said = child.stderr.readline()
        heard = [said]
        while "interrupted:" not in said:
            assert said, f"the child ended without saying what it waits for: {heard!r}"
            said = child.stderr.readline()
            heard.append(said)
        assert "1 attempt(s) still running (Sleeper)" in said
        assert "press Ctrl-C again to abandon them" in said
        if presses == 2:
            time.sleep(0.5)  # (a person reads the line first)
            child.send_signal(signal.SIGINT)
        code = child.wait(timeout=60)  # (a second press: at once, not after 60 s)
    finally:
        end_group(child)
    assert code == 130
    assert (tmp_path / "done.cleaned").exists()
    if presses == 1:  # waited for the running attempt, then cleaned it up
        assert (tmp_path / "slept").exists() and (tmp_path / "sleeper.cleaned").exists()
    else:  # abandoned: its Cleanup never ran while its Run might still run
        assert not (tmp_path / "slept").exists()
        assert not (tmp_path / "sleeper.cleaned").exists()
    assert integrity(records) == "ok"
    with RecordStore(records) as store:
        assert store.run("last").outcome == "interrupted"
    done = subprocess.run(dojobber_cmd("run", "tjobs.py:Root", "--records", str(records)),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=child_env(FAULT_DIR=str(tmp_path), SLOW_SECONDS="0"))
    assert done.returncode == 0, done.stderr
