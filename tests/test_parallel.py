"""Threads (workers=N) and other executors keep the sequential semantics."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings

from dojobber import (
    DoJobber,
    DummyJob,
    Job,
    JobNotSendableError,
    JobResult,
    JobStatus,
    Listener,
    RemoteError,
    _pool,
)
from dojobber.cluster import open_executor
from tests.helpers import converge
from tests.strategies import TRIES, Script, build, expected_status, scripts

from . import parallel_jobs


def sleeper(name: str, seconds: float, **attrs: Any) -> type[Job]:
    def Check(self: Job) -> str:
        time.sleep(seconds)
        return name

    return type(name, (Job,), {"Check": Check, **attrs})


def test_independent_jobs_overlap_with_four_workers() -> None:
    jobs = [sleeper(f"S{i}", 0.2) for i in range(4)]
    dojob = converge(type("Root", (DummyJob,), {"DEPS": jobs}), workers=4)
    spans = [(p.started, p.started + p.duration)
             for j in jobs for p in dojob.results[j.__name__].phases if p.name == "check"]
    assert len(spans) == 4
    # all four were running at one moment: the latest start precedes the earliest end
    assert max(s for s, _ in spans) < min(e for _, e in spans)


def test_one_worker_does_not_overlap() -> None:
    jobs = [sleeper(f"S{i}", 0.05) for i in range(3)]
    dojob = converge(type("Root", (DummyJob,), {"DEPS": jobs}), workers=1)
    assert dojob.success()
    spans = sorted((p.started, p.started + p.duration)
                   for j in jobs for p in dojob.results[j.__name__].phases)
    assert len(spans) == 3  # one check each (an empty list would pass what follows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@settings(max_examples=60, deadline=None)
@given(scripts())
def test_threads_give_the_sequential_results(script: Script) -> None:
    events: list[tuple[str, int]] = []
    dojob = DoJobber()
    # Odd sizes: two workers and batches from 2 ready jobs per worker on
    # (these graphs are too small for the usual spread).
    batched = len(script.deps) % 2 == 1
    dojob.configure(build(script, events), default_tries=TRIES, default_retry_delay=0,
                    workers=2 if batched else 8)
    with patch.object(_pool, "BATCH_SPREAD", 1 if batched else _pool.BATCH_SPREAD):
        dojob.checknrun()
    want = expected_status(script)
    assert [dojob.nodestatus[f"J{i}"] for i in range(len(want))] == want
    passed: set[int] = set()
    for kind, i in list(events):
        if kind == "check":
            assert all(d in passed for d in script.deps[i])
        elif kind == "pass":
            passed.add(i)
    for i, ok in enumerate(want):
        runs = events.count(("run", i))
        assert runs == (0 if ok is None else (script.fix[i] if ok else TRIES))


def test_retry_delay_never_blocks_a_worker() -> None:
    class Flaky(Job):
        TRIES = 2
        RETRY_DELAY = 0.4

        def Check(self) -> None:
            if self._check_phase == "recheck" and Flaky.seen:
                return
            raise RuntimeError("not yet")

        def Run(self) -> None:
            Flaky.seen = self.storage is not None and Flaky.seen_once
            Flaky.seen_once = True

        seen = False
        seen_once = False

    others = [sleeper(f"O{i}", 0.1) for i in range(4)]
    dojob = converge(type("Root", (DummyJob,), {"DEPS": [Flaky, *others]}), workers=2,
                     default_retry_delay=0)
    flaky = dojob.results["Flaky"]
    assert flaky.status is JobStatus.CHANGED and flaky.tries == 2
    first_end = max(p.started + p.duration for p in flaky.phases if p.attempt == 1)
    second_start = min(p.started for p in flaky.phases if p.attempt == 2)
    assert second_start - first_end >= 0.4
    # with 2 workers and 4 x 0.1 s of other work, the others finished while
    # Flaky waited: its delay did not occupy a worker
    other_ends = [p.started + p.duration for o in others for p in dojob.results[o.__name__].phases]
    assert max(other_ends) < second_start


def test_cleanup_order_is_reverse_creation_with_threads() -> None:
    created: list[str] = []
    cleaned: list[str] = []
    lock = threading.Lock()

    def make(name: str) -> type[Job]:
        def init(self: Job) -> None:
            with lock:
                created.append(name)

        def Check(self: Job) -> None:
            time.sleep(0.01)

        return type(name, (Job,), {"__init__": init, "Check": Check,
                                   "Cleanup": lambda self: cleaned.append(name)})

    converge(type("Root", (DummyJob,), {"DEPS": [make(f"C{i}") for i in range(8)]}), workers=4)
    assert cleaned == created[::-1] and len(cleaned) == 8


def test_global_storage_is_shared_between_threads() -> None:
    dojob = converge(parallel_jobs.Gather, workers=4)
    assert dojob.noderesults["Gather"] == ["a", "b"]


def test_process_pool_merges_storage_and_runs_cleanup_here() -> None:
    import os

    parallel_jobs.CLEANED.clear()
    with cf.ProcessPoolExecutor(2) as pool:
        dojob = converge(parallel_jobs.Gather, executor=pool)
        assert dojob.noderesults["Gather"] == ["a", "b"]
        assert dojob.noderesults["Write a"] != os.getpid()  # ran elsewhere
        converge(parallel_jobs.WithCleanup, executor=pool)
    assert [os.getpid()] == parallel_jobs.CLEANED


class CountingPool(cf.ThreadPoolExecutor):
    """A thread pool that counts the tasks it is given."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.tasks = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.tasks += 1
        return super().submit(*args, **kwargs)


def instant_jobs(count: int, check: Any = None) -> type[Job]:
    def passes(self: Job) -> str:
        return type(self).__name__

    leaves = [type(f"I{i}", (Job,), {"Check": check or passes}) for i in range(count)]
    return type("Instant", (DummyJob,), {"DEPS": leaves})


def test_batch_size_grows_only_when_far_more_jobs_are_ready_than_workers() -> None:
    from dojobber._pool import BATCH_SPREAD, MAX_BATCH, UNKNOWN_WORKERS, _batch_size

    assert _batch_size(50, 64) == 1  # slow jobs spread over every worker
    assert _batch_size(BATCH_SPREAD * 4, 4) == 1
    assert _batch_size(BATCH_SPREAD * 4 * 3, 4) == 3
    assert _batch_size(20_000, 4) == MAX_BATCH
    assert _batch_size(BATCH_SPREAD * UNKNOWN_WORKERS * 2, None) == 2


def test_many_instant_jobs_go_in_batches_with_the_same_results() -> None:
    with CountingPool(2) as pool:
        dojob = converge(instant_jobs(600), executor=pool, workers=2)
    assert dojob.success()
    assert all(dojob.noderesults[f"I{i}"] == f"I{i}" for i in range(600))
    assert pool.tasks < 600 // 4  # one task per attempt would be 601


def test_process_pool_batches_share_storage_in_order() -> None:
    with cf.ProcessPoolExecutor(2) as pool:
        dojob = converge(parallel_jobs.ManyWrites, executor=pool)
    assert dojob.noderesults["ManyWrites"] == 120
    assert all(dojob.nodestatus[f"Write k{i}"] for i in range(120))


def test_stop_inside_a_batch_starts_nothing_more() -> None:
    started: list[float] = []
    stopped_at: list[float] = []
    dojob = DoJobber()

    def check(self: Job) -> None:
        started.append(time.monotonic())
        if type(self).__name__ == "I40":
            dojob.stop()
            stopped_at.append(time.monotonic())

    dojob.configure(instant_jobs(600, check), workers=2)
    result = dojob.checknrun()
    assert result.stopped and not dojob.success()
    assert sum(1 for r in result.jobs.values() if r.status is JobStatus.PENDING) > 400
    # at most the other worker's attempt, already under way, starts after
    assert sum(1 for t in started if t > stopped_at[0]) <= 1


def test_system_exit_in_a_batched_job_fails_it_and_the_rest_still_run() -> None:
    def check(self: Job) -> None:
        if type(self).__name__ == "I7":
            raise SystemExit(3)

    dojob = DoJobber()
    heard = Finals()
    dojob.configure(instant_jobs(300, check), workers=2, listeners=[heard])
    dojob.checknrun()
    assert isinstance(dojob.nodeexceptions["I7"], SystemExit)
    assert all(dojob.nodestatus[f"I{i}"] for i in range(300) if i != 7)
    assert dojob.nodestatus["Instant"] is None
    # Listeners hear of the job the engine failed, one by one and in batches.
    assert heard.one_by_one["I7"] == heard.batched["I7"] == "failed"
    assert heard.batched == heard.one_by_one and len(heard.batched) == 301


class Finals(Listener):
    """Final statuses as job_finished and as jobs_finished tell them."""

    def __init__(self) -> None:
        self.one_by_one: dict[str, str] = {}
        self.batched: dict[str, str] = {}

    def job_finished(self, result: JobResult) -> None:
        self.one_by_one[result.name] = result.status.value

    def jobs_finished(self, results: list[JobResult]) -> None:
        self.batched.update((r.name, r.status.value) for r in results)


def test_job_that_cannot_be_sent_gets_the_named_error() -> None:
    class Local(Job):  # a local class does not pickle by reference
        def Check(self) -> None:
            pass

    heard = Finals()
    with open_executor("processes:1") as pool:
        dojob = converge(Local, executor=pool, listeners=[heard])
    err = dojob.nodeexceptions["Local"]
    assert heard.batched == heard.one_by_one == {"Local": "failed"}
    assert isinstance(err, JobNotSendableError)
    assert "Local" in str(err) and "pickle" in str(err)
    assert dojob.results["Local"].tries == 1  # not retried: it cannot get better


def test_exception_that_does_not_unpickle_comes_back_as_remote_error() -> None:
    with open_executor("processes:1") as pool:
        dojob = converge(parallel_jobs.RaisesOdd, executor=pool)
    err = dojob.nodeexceptions["RaisesOdd"]
    assert isinstance(err, RemoteError)
    assert "UnpicklableError: 1+2" in str(err)
    assert "Traceback" in (dojob.results["RaisesOdd"].traceback or "")


def test_passed_attempt_with_odd_first_check_error_comes_back() -> None:
    with open_executor("processes:1") as pool:
        dojob = converge(parallel_jobs.OddFirstCheck, executor=pool)
    assert dojob.noderesults == {"OddFirstCheck": "fixed"}
    first = dojob.results["OddFirstCheck"].phases[0]
    assert first.name == "check" and isinstance(first.error, RemoteError)


def test_ctrl_c_during_a_parallel_run_runs_cleanups_and_does_not_hang(tmp_path: Path) -> None:
    script = tmp_path / "interrupt.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        from dojobber import DoJobber, DummyJob, Job

        class Tidy(Job):
            def Cleanup(self):
                print("cleanup", type(self).__name__, flush=True)

        class Slow(Tidy):
            def Check(self):
                time.sleep(0.3)

        class Trigger(Tidy):
            def Check(self):
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)

        class After(Job):
            DEPS = [Slow.variant("Slow 1"), Slow.variant("Slow 2"), Trigger]
            def Check(self):
                print("After ran", flush=True)

        dojob = DoJobber()
        dojob.configure(After, workers=3)
        try:
            dojob.checknrun()
        except KeyboardInterrupt:
            print("interrupted", dojob.result.interrupted, flush=True)
            sys.exit(42)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 42, out.stderr
    lines = out.stdout.splitlines()
    assert "interrupted True" in lines
    assert "After ran" not in lines
    assert sorted(line for line in lines if line.startswith("cleanup")) == [
        "cleanup Slow 1", "cleanup Slow 2", "cleanup Trigger",
    ]


@pytest.mark.parametrize("spec", ["threads:0", "bogus:2", "dask:nowhere"])
def test_bad_executor_spec_is_a_clear_error(spec: str) -> None:
    from dojobber import ConfigurationError

    with pytest.raises(ConfigurationError, match="executor"), open_executor(spec):
        pass


def test_broken_process_pool_fails_the_jobs_with_worker_lost(tmp_path: Path) -> None:
    from dojobber import WorkerLostError

    killer = parallel_jobs.KillsItsWorker.variant("Killer", MARKER=str(tmp_path / "m"))
    with cf.ProcessPoolExecutor(1) as pool:
        dojob = converge(killer, executor=pool)
    err = dojob.nodeexceptions["Killer"]
    assert isinstance(err, WorkerLostError) and "Killer" in str(err)


def test_cli_run_with_an_executor_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dojobber import main

    script = tmp_path / "jobs.py"
    script.write_text(textwrap.dedent("""
        import os
        from dojobber import DummyJob, Job

        class Pid(Job):
            def Check(self):
                return os.getpid()

        class Root(DummyJob):
            DEPS = [Pid]
    """))
    code = main(["run", f"{script}:Root", "--executor", "processes:1", "--no-records", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    import json

    pid = json.loads(out.out)["jobs"]["Pid"]["result"]
    assert int(pid) != os.getpid()  # ran in the pool's process
    assert main(["run", f"{script}:Root", "--executor", "nope:1", "--no-records"]) == 2
    assert "threads:N" in capsys.readouterr().err
