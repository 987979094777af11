"""Each upstream DoJobber semantic, with a test that fails if it breaks."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dojobber import (
    CleanupError,
    DoJobber,
    DummyJob,
    Job,
    JobStatus,
    NotConfiguredError,
)
from tests.helpers import converge, make_job, root_of


def test_attempt_is_check_run_recheck_and_result_is_check_value() -> None:
    log: list[tuple[str, str]] = []
    a = make_job("A", log=log, fixed_after_runs=1)
    dojob = converge(a)
    assert log == [("A", "check"), ("A", "run"), ("A", "check")]
    assert dojob.nodestatus == {"A": True}
    assert dojob.noderesults == {"A": "A ok"}
    assert dojob.result is not None and dojob.result["A"].status is JobStatus.CHANGED


def test_passing_first_check_runs_nothing() -> None:
    log: list[tuple[str, str]] = []
    dojob = converge(make_job("A", log=log))
    assert log == [("A", "check")]
    assert dojob.results["A"].status is JobStatus.OK


def test_run_exception_is_ignored_when_recheck_passes() -> None:
    class Flaky(Job):
        done = False

        def Check(self) -> str:
            if not Flaky.done:
                raise RuntimeError("not yet")
            return "fine"

        def Run(self) -> None:
            Flaky.done = True
            raise ValueError("run complained but did the work")

    dojob = converge(Flaky)
    assert dojob.nodestatus == {"Flaky": True}
    assert dojob.nodeexceptions == {}
    phases = [(p.name, p.ok) for p in dojob.results["Flaky"].phases]
    assert phases == [("check", False), ("run", False), ("recheck", True)]


def test_job_runs_only_after_all_dependencies_succeeded() -> None:
    log: list[tuple[str, str]] = []
    c = make_job("C", log=log, fixed_after_runs=1)
    a = make_job("A", [c], log=log)
    b = make_job("B", log=log, fixed_after_runs=None, TRIES=2)
    top = make_job("Top", [a, b], log=log)
    dojob = converge(root_of(top))
    assert ("Top", "check") not in log
    assert log.index(("A", "check")) > log.index(("C", "run"))
    assert dojob.nodestatus == {"C": True, "A": True, "B": False, "Top": None, "Root": None}


def test_storage_is_fresh_per_attempt_and_global_storage_shared() -> None:
    seen: list[tuple[str, dict[str, Any], int]] = []

    class Counter(Job):
        TRIES = 3

        def Check(self) -> None:
            seen.append(("check", dict(self.storage or {}), id(self.global_storage)))
            self.storage["mark"] = True  # type: ignore[index]
            self.global_storage["count"] = self.global_storage.get("count", 0) + 1  # type: ignore[union-attr]
            if self.global_storage["count"] < 4:  # type: ignore[index]
                raise RuntimeError("again")

        def Run(self) -> None:
            assert self.storage == {"mark": True}

    class Reader(Job):
        DEPS = [Counter]

        def Check(self) -> int:
            return int(self.global_storage["count"])  # type: ignore[index]

    dojob = converge(Reader)
    assert dojob.noderesults["Reader"] == 4
    # every attempt's first Check sees an empty storage
    assert [s for kind, s, _ in seen][0::2] == [{}, {}]
    assert len({gid for *_, gid in seen}) == 1
    # a new checknrun starts from an empty global storage (else: 5)
    again = converge(Reader)
    assert again.noderesults["Reader"] == 4


def test_tries_per_job_and_default_tries() -> None:
    log: list[tuple[str, str]] = []
    own = make_job("Own", log=log, fixed_after_runs=None, TRIES=2)
    default = make_job("Default", log=log, fixed_after_runs=None)
    dojob = converge(root_of(own, default), default_tries=4)
    assert log.count(("Own", "run")) == 2 and log.count(("Own", "check")) == 4
    assert log.count(("Default", "run")) == 4
    assert dojob.results["Own"].tries == 2 and dojob.results["Default"].tries == 4


def test_failed_job_is_retried_only_after_other_runnable_work() -> None:
    log: list[tuple[str, str]] = []
    flaky = make_job("Flaky", log=log, fixed_after_runs=2)
    others = [make_job(f"Other{i}", log=log) for i in range(3)]
    after = make_job("After", others[:1], log=log)
    converge(root_of(flaky, *others, after))
    checks = [name for name, kind in log if kind == "check"]
    first_retry = [i for i, n in enumerate(checks) if n == "Flaky"][2]  # 3rd Flaky check
    # every other job (including one unblocked later) ran before the retry
    for name in ("Other0", "Other1", "Other2", "After"):
        assert checks.index(name) < first_retry


def test_retry_delay_is_a_minimum_and_not_slept_while_others_can_run() -> None:
    stamps: dict[str, list[float]] = {}

    def stamp(name: str) -> None:
        stamps.setdefault(name, []).append(time.monotonic())

    class Slow(Job):
        TRIES = 2
        RETRY_DELAY = 0.3

        def Check(self) -> None:
            stamp("Slow")
            raise RuntimeError("no")

        def Run(self) -> None:
            pass

    class Other(Job):
        def Check(self) -> None:
            stamp("Other")

    converge(root_of(Slow, Other))
    slow = stamps["Slow"]
    assert len(slow) == 4
    # two tries of Slow are at least RETRY_DELAY apart (end of 1st -> start of 2nd)
    assert slow[2] - slow[1] >= 0.3
    # Other did not wait for Slow's delay: it ran between Slow's tries
    assert slow[1] <= stamps["Other"][0] <= slow[2]


def test_no_act_does_only_the_first_check() -> None:
    log: list[tuple[str, str]] = []
    a = make_job("A", log=log, fixed_after_runs=1)
    ok = make_job("Ok", log=log)
    b = make_job("B", [a], log=log)
    dojob = converge(root_of(ok, b), no_act=True)
    assert sorted(log) == [("A", "check"), ("Ok", "check")]
    assert dojob.nodestatus == {"A": False, "Ok": True, "B": None, "Root": None}
    assert dojob.result is not None and dojob.result["A"].tries == 1


def test_constructor_exception_is_a_failed_job_not_a_crash() -> None:
    class Broken(Job):
        TRIES = 2

        def __init__(self) -> None:
            raise OSError("cannot open config")

        def Check(self) -> None:
            pass

    dojob = converge(root_of(Broken))
    assert dojob.nodestatus == {"Broken": False, "Root": None}
    assert isinstance(dojob.nodeexceptions["Broken"], OSError)
    res = dojob.results["Broken"]
    assert res.tries == 2 and [p.name for p in res.phases] == ["init", "init"]


def test_cleanup_once_per_instance_last_created_first() -> None:
    order: list[str] = []

    def make(name: str, deps: list[type[Job]], fixed: int) -> type[Job]:
        job = make_job(name, deps, fixed_after_runs=fixed)
        job.Cleanup = lambda self: order.append(name)  # type: ignore[attr-defined]
        return job

    a = make("A", [], 2)  # two attempts -> two instances
    b = make("B", [a], 0)
    converge(b)
    assert order == ["B", "A", "A"]


def test_instances_without_cleanup_are_not_kept_after_their_attempt() -> None:
    """Only instances with a Cleanup wait for the end of the run; the others
    are freed as soon as their attempt is recorded (a big run stays small)."""
    import gc
    import weakref

    made: dict[str, list[weakref.ref[Job]]] = {"A": [], "B": []}

    def init(name: str) -> Any:
        def remember(self: Job) -> None:
            made[name].append(weakref.ref(self))
        return remember

    a = make_job("A", fixed_after_runs=1, __init__=init("A"))
    b = make_job("B", [a], fixed_after_runs=1, __init__=init("B"),
                 Cleanup=lambda self: None)
    dojob = DoJobber()
    dojob.configure(b, cleanup=False)
    dojob.checknrun()
    gc.collect()
    assert [ref() is None for ref in made["A"]] == [True]
    assert [ref() is None for ref in made["B"]] == [False]
    dojob.cleanup()
    gc.collect()
    assert [ref() is None for ref in made["B"]] == [True]


def test_cleanup_false_defers_to_explicit_cleanup() -> None:
    order: list[str] = []
    a = make_job("A", Cleanup=lambda self: order.append("A"))
    dojob = DoJobber()
    dojob.configure(a, cleanup=False)
    dojob.checknrun()
    assert order == []
    dojob.cleanup()
    assert order == ["A"]
    dojob.cleanup()  # each instance once
    assert order == ["A"]


def test_failing_cleanup_does_not_stop_the_others() -> None:
    order: list[str] = []

    def bad(self: Job) -> None:
        order.append("B")
        raise RuntimeError("leak")

    a = make_job("A", Cleanup=lambda self: order.append("A"))
    b = make_job("B", [a], Cleanup=bad)
    dojob = DoJobber()
    dojob.configure(b)
    with pytest.raises(CleanupError) as info:
        dojob.checknrun()
    assert order == ["B", "A"]
    assert "B (RuntimeError: leak)" in str(info.value)
    assert dojob.success()  # the run itself converged


def test_working_directory_is_restored_before_each_phase(tmp_path: Path) -> None:
    start = os.getcwd()
    seen: list[str] = []

    class Wanderer(Job):
        def Check(self) -> None:
            seen.append(os.getcwd())
            os.chdir(tmp_path)
            if len(seen) < 2:
                raise RuntimeError("again")

        def Run(self) -> None:
            seen.append(os.getcwd())
            os.chdir("/")

    class Next(Job):
        DEPS = [Wanderer]

        def Check(self) -> None:
            seen.append(os.getcwd())
            os.chdir("/")

    converge(Next)
    assert seen == [start] * 4
    assert os.getcwd() == start


def test_checknrun_node_runs_only_that_part() -> None:
    log: list[tuple[str, str]] = []
    a = make_job("A", log=log)
    b = make_job("B", log=log)
    dojob = DoJobber()
    dojob.configure(root_of(a, b))
    dojob.checknrun(a)
    assert log == [("A", "check")] and dojob.nodestatus == {"A": True}
    dojob.checknrun("B")
    assert dojob.nodestatus == {"B": True}


def test_success_partial_success_failure() -> None:
    good = make_job("Good")
    bad = make_job("Bad", fixed_after_runs=None, TRIES=1)
    dojob = converge(root_of(good, bad))
    assert (dojob.success(), dojob.partial_success(), dojob.failure()) == (False, True, True)
    dojob = converge(root_of(make_job("Good")))
    assert (dojob.success(), dojob.partial_success(), dojob.failure()) == (True, True, False)
    fresh = DoJobber()
    assert (fresh.success(), fresh.partial_success(), fresh.failure()) == (False, False, True)


def test_set_args_are_passed_to_check_and_run() -> None:
    got: list[tuple[Any, ...]] = []

    class Args(Job):
        def Check(self, *args: Any, **kwargs: Any) -> None:
            got.append((args, kwargs))
            if len(got) == 1:
                raise RuntimeError

        def Run(self, *args: Any, **kwargs: Any) -> None:
            got.append((args, kwargs))

    dojob = DoJobber()
    dojob.configure(Args)
    dojob.set_args(1, 2, host="x")
    dojob.checknrun()
    assert got == [((1, 2), {"host": "x"})] * 3


def test_ctrl_c_stops_scheduling_runs_cleanups_and_reraises() -> None:
    order: list[str] = []
    a = make_job("A", Cleanup=lambda self: order.append("A cleanup"))

    class Interrupt(Job):
        DEPS = [a]

        def Check(self) -> None:
            raise KeyboardInterrupt

    later = make_job("Later", [Interrupt], log=[])
    dojob = DoJobber()
    dojob.configure(later)
    with pytest.raises(KeyboardInterrupt):
        dojob.checknrun()
    assert order == ["A cleanup"]
    assert dojob.result is not None and dojob.result.interrupted
    assert dojob.result["Later"].status is JobStatus.PENDING
    assert dojob.nodestatus["A"] is True


def test_use_before_configure_is_a_clear_error() -> None:
    with pytest.raises(NotConfiguredError, match="configure"):
        DoJobber().checknrun()


def test_no_handler_added_and_no_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Each DoJobber says each line once, however many were made before."""
    logger = logging.getLogger("dojobber")
    before = list(logger.handlers)
    try:
        for n in range(3):
            dojob = DoJobber(dojobber_loglevel=logging.DEBUG)
            dojob.configure(make_job("A", fixed_after_runs=1), verbose=True)
            dojob.checknrun()
            assert logger.level == logging.DEBUG
            assert logger.handlers == before, n
            err = capsys.readouterr().err.splitlines()
            assert err == ["A.check: fail", "A.run: pass", "A.recheck: pass"], n
    finally:
        logger.setLevel(logging.NOTSET)


def test_verbose_prints_upstream_style_lines(capsys: pytest.CaptureFixture[str]) -> None:
    a = make_job("A", fixed_after_runs=1)
    converge(a, verbose=True)
    err = capsys.readouterr().err.splitlines()
    assert err == ["A.check: fail", "A.run: pass", "A.recheck: pass"]


def test_debug_prints_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    bad = make_job("Bad", fixed_after_runs=None, TRIES=1)
    converge(bad, debug=True)
    err = capsys.readouterr().err
    assert 'Bad.recheck: fail "Bad not yet (1 runs)"' in err
    assert "Traceback (most recent call last)" in err


def test_typed_results_carry_tries_phases_and_traceback() -> None:
    bad = make_job("Bad", fixed_after_runs=None, TRIES=2)
    dojob = converge(bad)
    res = dojob.results["Bad"]
    assert res.status is JobStatus.FAILED and res.tries == 2
    assert [p.name for p in res.phases] == ["check", "run", "recheck"] * 2
    assert [p.attempt for p in res.phases] == [1, 1, 1, 2, 2, 2]
    assert set(res.durations) == {"check", "run", "recheck"}
    assert res.traceback is not None and "RuntimeError: Bad not yet" in res.traceback
    assert all(p.duration >= 0 for p in res.phases)


def test_blocked_jobs_have_blocked_status() -> None:
    bad = make_job("Bad", fixed_after_runs=None, TRIES=1)
    mid = make_job("Mid", [bad])
    dojob = converge(root_of(mid))
    assert dojob.result is not None
    assert dojob.result["Mid"].status is JobStatus.BLOCKED
    assert dojob.result["Root"].status is JobStatus.BLOCKED
    assert "1 failed, 2 blocked" in dojob.result.summary()
    # Each result knows its job's place in the graph, dependencies first.
    names = list(dojob.result.graph.names)
    assert names == ["Bad", "Mid", "Root"]
    assert [dojob.result[name].index for name in names] == [0, 1, 2]


def test_dummy_job_always_passes() -> None:
    dojob = converge(type("Group", (DummyJob,), {}))
    assert dojob.nodestatus == {"Group": True}


def test_stop_ends_the_run_after_the_running_job() -> None:
    log: list[tuple[str, str]] = []
    dojob = DoJobber()

    class Stopper(Job):
        def Check(self) -> None:
            log.append(("Stopper", "check"))
            if len(log) == 1:
                dojob.stop()

    later = make_job("Later", [Stopper], log=log)
    dojob.configure(later)
    result = dojob.checknrun()
    assert log == [("Stopper", "check")]
    assert result.stopped and not result.success() and not dojob.success()
    assert result["Later"].status is JobStatus.PENDING
    assert "Later: stopped before the end (1 ok)" in result.summary()
    # the next run is not stopped
    assert dojob.checknrun().success()


def test_stop_with_threads_lets_running_jobs_finish() -> None:
    import threading
    import time as _time

    dojob = DoJobber()
    slow_running = threading.Event()

    class Stopper(Job):
        def Check(self) -> None:
            assert slow_running.wait(30)  # stop while Slow runs
            dojob.stop()

    class Slow(Job):
        def Check(self) -> str:
            slow_running.set()
            _time.sleep(0.2)
            return "finished"

    after = make_job("After", [Stopper, Slow])
    dojob.configure(after, workers=2)
    result = dojob.checknrun()
    assert result.stopped
    assert result["Slow"].result == "finished"
    assert result["After"].status is JobStatus.PENDING
