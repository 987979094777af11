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


def blocking_graph(release: threading.Event, cleaned: list[str]) -> type[Job]:
    """Blocked: its Run waits for ``release`` (TIMEOUT 0.2 s); Others: ten
    jobs that pass at once; the root needs them all."""

    class Blocked(Job):
        TIMEOUT = 0.2
        TRIES = 3

        def Check(self) -> None:
            if not release.is_set():
                raise RuntimeError("not released")

        def Run(self) -> None:
            release.wait()

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
