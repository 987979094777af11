"""Per-job TIMEOUT on the inline and thread engines, process pools and dask."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path
from typing import Any

import pytest

from dojobber import (
    ConfigurationError,
    DoJobber,
    DummyJob,
    InvalidTimeoutError,
    Job,
    JobStatus,
    JobTimeoutError,
    Listener,
)
from dojobber._timeout import abandoned
from tests import parallel_jobs
from tests.fakes.procs import wait_until


def stuck_job(release: threading.Event, name: str = "Stuck") -> type[Job]:
    """A job (TIMEOUT 0.2 s) whose Check fails and whose Run waits for
    ``release``: every attempt times out until then."""

    def check(self: Job) -> None:
        if not release.is_set():
            raise RuntimeError("not released")

    def run(self: Job) -> None:
        release.wait()

    return type(name, (Job,), {"TIMEOUT": 0.2, "Check": check, "Run": run})


def blocking_graph(release: threading.Event, cleaned: list[str]) -> type[Job]:
    """Blocked: its Run waits for ``release`` (TIMEOUT 0.2 s); Others: ten
    jobs that pass at once; the root needs them all."""

    class Blocked(stuck_job(release)):  # type: ignore[misc]
        TRIES = 3

        def Cleanup(self) -> None:
            cleaned.append("Blocked")

    others = [type(f"Other{n}", (Job,), {"Check": lambda self: "ok"}) for n in range(10)]
    return type("Root", (DummyJob,), {"DEPS": [Blocked, *others]})


class Cleanups(Listener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, BaseException | None]] = []

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        self.seen.append((job, ok, error))


@pytest.mark.parametrize("workers", [1, 4])
def test_an_attempt_past_its_timeout_is_a_failed_try_and_the_run_goes_on(workers: int) -> None:
    release = threading.Event()
    cleaned: list[str] = []
    heard = Cleanups()
    dj = DoJobber()
    dj.configure(blocking_graph(release, cleaned), workers=workers, listeners=[heard])
    try:
        result = dj.checknrun()
        blocked = result["Blocked"]
        assert blocked.status is JobStatus.FAILED
        assert isinstance(blocked.exception, JobTimeoutError)
        assert "did not finish within TIMEOUT=0.2s" in str(blocked.exception)
        assert blocked.tries == 1  # not tried again while its attempt still runs
        assert [p.name for p in blocked.phases] == ["timeout"]
        assert all(result[f"Other{n}"].status is JobStatus.OK for n in range(10))
        assert result["Root"].status is JobStatus.BLOCKED
        assert not release.is_set()  # the run ended while the attempt still waits
        assert abandoned(dj.jobs.classes[dj.jobs.index["Blocked"]])
        # Cleanup of its instance was skipped, and said so
        assert cleaned == []
        [(job, ok, error)] = heard.seen
        assert job == "Blocked" and not ok and isinstance(error, JobTimeoutError)
        assert "not cleaned up" in str(error)
        # A run while it still runs does not try it at all
        again = dj.checknrun()["Blocked"]
        assert isinstance(again.exception, JobTimeoutError) and again.exception.still_running
        assert "not tried: its attempt that timed out" in str(again.exception)
    finally:
        release.set()
    job = dj.jobs.classes[dj.jobs.index["Blocked"]]
    wait_until(lambda: not abandoned(job), what="the abandoned attempt to end")
    assert dj.checknrun()["Root"].status is JobStatus.OK  # tried again, and passes


def test_timeout_from_variant_and_configure() -> None:
    class Slow(Job):
        def Check(self) -> None:
            pass

    Fast = Slow.variant("Fast", TIMEOUT=5)
    root = type("Root", (DummyJob,), {"DEPS": [Slow, Fast]})
    dj = DoJobber()
    dj.configure(root)
    assert dj.jobs.timeouts == [None, 5.0, None]
    dj.configure(root, default_timeout=30)
    assert dj.jobs.timeouts == [30.0, 5.0, 30.0]
    dj.configure(Slow)
    assert dj.jobs.timeouts is None  # nothing to bound: the engine pays nothing
    with pytest.raises(InvalidTimeoutError, match="Bad: TIMEOUT is -1"):
        dj.configure(Slow.variant("Bad", TIMEOUT=-1))
    with pytest.raises(ConfigurationError, match="default_timeout"):
        dj.configure(Slow, default_timeout=0)


def test_a_job_that_ends_in_time_is_unchanged(tmp_path: Path) -> None:
    dj = DoJobber()
    dj.configure(parallel_jobs.Quick, workers=1)
    dj.set_args(tmp=str(tmp_path))
    result = dj.checknrun()
    assert result["Quick"].status is JobStatus.CHANGED and result["Quick"].result == "quick"
    assert [p.name for p in result["Quick"].phases] == ["check", "run", "recheck"]


def _stuck_and_quick(executor: Any, tmp_path: Path) -> Any:
    dj = DoJobber()
    dj.configure(parallel_jobs.StuckAndQuick, executor=executor)
    dj.set_args(tmp=str(tmp_path))
    return dj.checknrun()


def test_a_process_pool_stops_the_attempt(tmp_path: Path) -> None:
    with cf.ProcessPoolExecutor(2) as pool:
        result = _stuck_and_quick(pool, tmp_path)
        stuck = result["Stuck"]
        assert isinstance(stuck.exception, JobTimeoutError) and stuck.tries == 1
        assert result["Quick"].status is JobStatus.CHANGED
        assert list(tmp_path.glob("stuck-*"))  # it did start
        # the pool still works: its worker was not lost
        assert pool.submit(sum, [1, 2]).result(timeout=60) == 3


def test_dask_stops_the_worker_running_it(tmp_path: Path) -> None:
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        result = _stuck_and_quick(client.get_executor(), tmp_path)
        stuck = result["Stuck"]
        assert isinstance(stuck.exception, JobTimeoutError), stuck.exception
        assert result["Quick"].status is JobStatus.CHANGED
        [marker] = tmp_path.glob("stuck-*")
        pid = int(marker.name.split("-")[1])
        # the worker process that ran it was stopped (its nanny starts another)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "the worker to end")


def _stuck_among(n: int, release: threading.Event, stuck_at: int = 0) -> type[Job]:
    """``n`` jobs that pass at once with one (``Stuck``) among them whose
    Run waits for ``release`` (all with TIMEOUT 0.2 s); the root needs them
    all.  Every job records the thread it ran on."""
    seen: dict[str, int] = {}

    def check(self: Job) -> str:
        seen[type(self).__name__] = threading.get_ident()
        return "ok"

    Stuck = stuck_job(release)
    quick = [type(f"Quick{k}", (Job,), {"Check": check, "TIMEOUT": 0.2}) for k in range(n)]
    deps: list[type[Job]] = [*quick[:stuck_at], Stuck, *quick[stuck_at:]]
    root = type("Root", (DummyJob,), {"DEPS": deps, "TIMEOUT": 0.2})
    root.seen = seen  # type: ignore[attr-defined]
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_a_timeout_in_the_middle_of_a_batch_keeps_the_rest(workers: int) -> None:
    """With many ready jobs the thread engine runs attempts in batches on
    one thread; an attempt that times out in the middle of one keeps what
    the batch found before it and the rest of the batch still runs (on
    another thread: the one running it is abandoned).  Inline, the loop
    goes on on a new loop thread."""
    release = threading.Event()
    root = _stuck_among(300, release, stuck_at=120)
    dj = DoJobber()
    dj.configure(root, workers=workers)
    try:
        result = dj.checknrun()
        stuck = result["Stuck"]
        assert isinstance(stuck.exception, JobTimeoutError) and stuck.tries == 1
        quick = [result[f"Quick{k}"] for k in range(300)]
        assert [j.status for j in quick] == [JobStatus.OK] * 300
        assert all(j.tries == 1 for j in quick)
        if workers == 1:  # the jobs after the stuck one ran on another thread
            threads = root.seen  # type: ignore[attr-defined]
            assert threads["Quick120"] != threads["Quick119"]
    finally:
        release.set()


def test_the_threads_of_timed_out_attempts_are_replaced() -> None:
    """Two workers, both abandoned in stuck attempts: the run still gets
    through every other job (the pool adds a thread for each abandoned one)."""
    release = threading.Event()

    Stuck = stuck_job(release)
    quick = [type(f"Quick{k}", (Job,), {"Check": lambda self: "ok"}) for k in range(10)]
    root = type("Root", (DummyJob,), {"DEPS": [Stuck.variant("Stuck1"), Stuck.variant("Stuck2"),
                                                *quick]})
    dj = DoJobber()
    dj.configure(root, workers=2)
    try:
        result = dj.checknrun()
        assert isinstance(result["Stuck1"].exception, JobTimeoutError)
        assert isinstance(result["Stuck2"].exception, JobTimeoutError)
        assert all(result[f"Quick{k}"].status is JobStatus.OK for k in range(10))
    finally:
        release.set()


@pytest.mark.parametrize("workers", [1, 4])
def test_system_exit_and_keyboard_interrupt_in_a_timed_job(workers: int) -> None:
    class Exits(Job):
        TIMEOUT = 30

        def Check(self) -> None:
            raise SystemExit(3)

    dj = DoJobber()
    dj.configure(Exits, workers=workers)
    result = dj.checknrun()
    assert isinstance(result["Exits"].exception, SystemExit) and result["Exits"].tries == 1

    class Interrupts(Job):
        TIMEOUT = 30

        def Check(self) -> None:
            raise KeyboardInterrupt

    dj.configure(Interrupts, workers=workers)
    with pytest.raises(KeyboardInterrupt):
        dj.checknrun()
    assert dj.result is not None and dj.result.interrupted


STUCK_SCRIPT = """
import sys, threading, time
from dojobber import DoJobber, DummyJob, Job

class Stuck(Job):
    TIMEOUT = 0.2
    def Check(self):
        raise RuntimeError("not yet")
    def Run(self):
        threading.Event().wait()  # for ever

class Quick(Job):
    TIMEOUT = 5
    def Check(self):
        return "ok"

class Root(DummyJob):
    DEPS = [Stuck, Quick]

dj = DoJobber()
dj.configure(Root, workers=int(sys.argv[1]))
result = dj.checknrun()
print(type(result["Stuck"].exception).__name__, result["Quick"].status.value, flush=True)
"""


@pytest.mark.parametrize("workers", [1, 4])
def test_an_abandoned_attempt_does_not_hold_the_interpreter_at_exit(workers: int) -> None:
    """The script ends while its timed-out attempt waits for ever: Python
    exits (the abandoned attempt's thread is a daemon thread; a
    ThreadPoolExecutor's would be joined at exit, for ever)."""
    from tests.fakes.procs import run_python

    done = run_python(["-c", STUCK_SCRIPT, str(workers)], timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["JobTimeoutError", "ok"]


CTRL_C_SCRIPT = """
import os, time
from dojobber import Job

HERE = os.environ["FAULT_DIR"]


def mark(name):
    open(os.path.join(HERE, name), "a").close()


class Done(Job):
    def Check(self):
        pass

    def Cleanup(self):
        mark("done.cleaned")


class Waiter(Job):
    TIMEOUT = 600
    DEPS = [Done]

    def Check(self):
        if not os.path.exists(os.path.join(HERE, "waited")):
            raise RuntimeError("not yet")

    def Run(self):
        mark("waiter.running")
        try:
            if os.environ.get("BLOCKING"):
                time.sleep(600)  # one call that no signal ends (not on the main thread)
            while True:
                time.sleep(0.05)
        except KeyboardInterrupt:
            mark("waiter.interrupted")
            raise

    def Cleanup(self):
        mark("waiter.cleaned")


class Root(Job):
    DEPS = [Waiter]

    def Check(self):
        pass
"""


@pytest.mark.parametrize("blocking", [False, True], ids=["python-code", "blocking-call"])
def test_ctrl_c_inline_with_a_timeout(tmp_path: Path, blocking: bool) -> None:
    """Inline, a job with a TIMEOUT runs on the loop thread: Ctrl-C is raised
    in its code as it would be on the main thread; while one blocking call
    goes on, the run says what it waits for and a second Ctrl-C abandons
    the attempt (its Cleanup is not run)."""
    import signal
    import subprocess
    import sys

    from dojobber.records import RecordStore
    from tests.fakes.procs import child_env

    (tmp_path / "cjobs.py").write_text(CTRL_C_SCRIPT)
    records = tmp_path / "records.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "dojobber", "run", "cjobs.py:Root", "--records", str(records),
         "--no-progress"],
        cwd=tmp_path, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=child_env(FAULT_DIR=str(tmp_path), **({"BLOCKING": "1"} if blocking else {})))
    assert child.stderr is not None
    try:
        wait_until((tmp_path / "waiter.running").exists, 60, "Waiter to run")
        child.send_signal(signal.SIGINT)
        if blocking:
            said = child.stderr.readline()
            while "interrupted:" not in said:
                assert said, "the child ended without saying what it waits for"
                said = child.stderr.readline()
            assert "waiting for the attempt of Waiter" in said
            assert "press Ctrl-C again to abandon it" in said
            child.send_signal(signal.SIGINT)
        code = child.wait(timeout=60)
        rest = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stderr.close()
    assert code == 130, rest
    assert "Traceback" not in rest, rest
    assert (tmp_path / "done.cleaned").exists()
    if blocking:  # abandoned: its Cleanup never runs while its Run may still run
        assert not (tmp_path / "waiter.cleaned").exists()
    else:  # interrupted in its own code, then cleaned up
        assert (tmp_path / "waiter.interrupted").exists()
        assert (tmp_path / "waiter.cleaned").exists()
    with RecordStore(records) as store:
        assert store.run("last").outcome == "interrupted"
