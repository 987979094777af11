"""DoJobber.converge(): rounds, backoff, deadline, give-up, records, listeners."""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dojobber import (
    Backoff,
    ConfigurationError,
    DoJobber,
    GiveUp,
    Job,
    Listener,
    RoundInfo,
    RunResult,
    Verdict,
)
from dojobber.backoff import parse_duration
from dojobber.converge import ConvergeResult, failure_signature
from dojobber.records import RecordStore

FAST = Backoff(0.001, 2.0, 0.01, 0.0)


def counting_graph(tmp_path: Path, needs: dict[str, int]) -> type[Job]:
    """Jobs that pass from their k-th attempt on, counting first Checks in
    files (``needs`` maps job name -> k); the root depends on all of them."""
    made: list[type[Job]] = []
    for name, k in needs.items():
        counter = tmp_path / f"{name}.count"

        def check(self: Job, counter: Path = counter, k: int = k, name: str = name) -> None:
            n = int(counter.read_text()) if counter.exists() else 0
            if self._check_phase == "check":
                n += 1
                counter.write_text(str(n))
            if n < k:
                raise RuntimeError(f"{name} not there yet ({n} of {k})")

        made.append(type(name, (Job,), {"Check": check, "Run": lambda self: None, "TRIES": 1}))
    return type("Root", (Job,), {"DEPS": made, "Check": lambda self: "all there"})


class Heard(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def round_started(self, round: RoundInfo) -> None:
        self.events.append(("started", round.number))

    def run_started(self, run: Any) -> None:
        self.events.append(("run",))

    def round_finished(self, round: RoundInfo, result: RunResult) -> None:
        self.events.append(("finished", round.number, result.success()))

    def round_waiting(self, round: RoundInfo, seconds: float) -> None:
        self.events.append(("waiting", round.number, seconds))

    def converge_finished(self, result: ConvergeResult) -> None:
        self.events.append(("done", result.verdict))


def test_converges_over_rounds_with_fresh_state(tmp_path: Path) -> None:
    # A needs 2 checks, B 4: B's first three fail (each a round of its own,
    # TRIES=1), so round 4 converges; each failure message differs (progress).
    root = counting_graph(tmp_path, {"A": 2, "B": 4})
    heard = Heard()
    dj = DoJobber()
    dj.configure(root, listeners=[heard])
    result = dj.converge(backoff=FAST, max_rounds=10)
    assert result.verdict is Verdict.CONVERGED and result.success()
    assert len(result.rounds) == 4
    assert [r.success() for r in result.rounds] == [False, False, False, True]
    assert result.rounds[0]["A"].status.value == "failed"
    assert result.rounds[1]["A"].status.value == "ok"
    assert dj.result is result.last and dj.nodestatus["Root"] is True
    assert dj.noderesults["Root"] == "all there"
    assert dj.converge_result is result
    assert (tmp_path / "B.count").read_text() == "4"
    assert heard.events == [
        ("started", 1), ("run",), ("finished", 1, False), ("waiting", 2, 0.001),
        ("started", 2), ("run",), ("finished", 2, False), ("waiting", 3, 0.001),
        ("started", 3), ("run",), ("finished", 3, False), ("waiting", 4, 0.001),
        ("started", 4), ("run",), ("finished", 4, True), ("done", Verdict.CONVERGED),
    ]


def test_global_storage_is_fresh_each_round() -> None:
    seen: list[Any] = []

    class Remember(Job):
        TRIES = 1

        def Check(self) -> None:
            assert self.global_storage is not None
            if self._check_phase == "check":
                seen.append(self.global_storage.get("mark"))
                self.global_storage["mark"] = len(seen)
            if len(seen) < 3:
                raise RuntimeError("again")

        def Run(self) -> None:
            pass

    dj = DoJobber()
    dj.configure(Remember)
    assert dj.converge(backoff=FAST).success()
    assert seen == [None, None, None]


def test_max_rounds_runs_out(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"Slow": 100})
    dj = DoJobber()
    dj.configure(root)
    result = dj.converge(max_rounds=3, backoff=FAST)
    assert result.verdict is Verdict.EXHAUSTED and not result.success()
    assert len(result.rounds) == 3 and len(result.waits) == 2
    assert "max_rounds=3" in result.reason
    assert (tmp_path / "Slow.count").read_text() == "3"


def test_default_limit_is_ten_rounds(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"Never": 10**6})
    dj = DoJobber()
    dj.configure(root)
    assert len(dj.converge(backoff=0).rounds) == 10


def test_backoff_grows_while_stuck_and_restarts_after_progress(tmp_path: Path) -> None:
    # Stuck fails the same way in rounds 1-3; Moving changes its message
    # each round until round 4; both pass from their 6th check.
    counter = tmp_path / "n"

    class Stuck(Job):
        TRIES = 1

        def Check(self) -> None:
            n = int(counter.read_text()) if counter.exists() else 0
            if self._check_phase == "check":
                n += 1
                counter.write_text(str(n))
            if n < 6:
                raise RuntimeError("still building" if n <= 3 else f"step {n}")

        def Run(self) -> None:
            pass

    dj = DoJobber()
    dj.configure(Stuck)
    result = dj.converge(backoff=Backoff(1 / 64, 2, 1, 0), max_rounds=10)
    assert result.success() and len(result.rounds) == 6
    # rounds 1-3 same failure: wait grows; rounds 4 and 5 differ: restarts.
    assert result.waits == [1 / 64, 2 / 64, 4 / 64, 1 / 64, 1 / 64]


def test_max_stuck_rounds_stops_a_session_that_fails_the_same_way() -> None:
    class Never(Job):
        TRIES = 1

        def Check(self) -> None:
            raise RuntimeError("the build is still running")

    dj = DoJobber()
    dj.configure(Never)
    result = dj.converge(backoff=FAST, max_rounds=20, max_stuck_rounds=2)
    assert result.verdict is Verdict.EXHAUSTED
    assert len(result.rounds) == 3  # round 1, then two rounds like it
    assert "failed the same way" in result.reason


class UnauthorizedError(GiveUp, PermissionError):
    pass


def test_give_up_stops_at_once(tmp_path: Path) -> None:
    other = tmp_path / "other.count"

    class Login(Job):
        def Check(self) -> None:
            raise UnauthorizedError("password refused for ann")

    class Other(Job):
        TRIES = 1

        def Check(self) -> None:
            raise RuntimeError("not yet")

        def Run(self) -> None:
            other.write_text(str(int(other.read_text()) + 1 if other.exists() else 1))

    class Root(Job):
        DEPS = [Login, Other]

        def Check(self) -> None:
            pass

    heard = Heard()
    dj = DoJobber()
    dj.configure(Root, listeners=[heard], default_retry_delay=0)
    result = dj.converge(backoff=3600, max_rounds=5)
    assert result.verdict is Verdict.GAVE_UP
    assert len(result.rounds) == 1 and result.waits == []
    assert [job.name for job in result.gave_up] == ["Login"]
    assert "Login (UnauthorizedError: password refused for ann)" in result.reason
    assert other.read_text() == "1"  # the rest of the round still ran
    assert heard.events[-1] == ("done", Verdict.GAVE_UP)


def test_deadline_stops_between_rounds(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"Never": 10**6})
    dj = DoJobber()
    dj.configure(root)
    result = dj.converge(within=0.3, backoff=0.05, max_rounds=None)
    assert result.verdict is Verdict.EXHAUSTED
    assert "deadline" in result.reason
    assert 1 <= len(result.rounds) == len(result.waits) + 1
    assert sum(result.waits) < 0.3


def test_deadline_within_a_long_wait_ends_the_session_without_waiting(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"Never": 10**6})
    dj = DoJobber()
    dj.configure(root)
    result = dj.converge(within=timedelta(minutes=30), backoff=Backoff(3600, 2, 7200, 0))
    assert result.verdict is Verdict.EXHAUSTED
    assert len(result.rounds) == 1 and result.waits == []
    assert "deadline (1800s) comes before the next round" in result.reason


def test_stop_during_a_wait_ends_the_session(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"Never": 10**6})
    dj = DoJobber()

    class StopWhenWaiting(Listener):
        def round_waiting(self, round: RoundInfo, seconds: float) -> None:
            threading.Timer(0.05, dj.stop).start()

    dj.configure(root, listeners=[StopWhenWaiting()])
    result = dj.converge(backoff=3600)
    assert result.verdict is Verdict.INTERRUPTED
    assert len(result.rounds) == 1 and result.waits == [3600]
    assert "while waiting" in result.reason
    # the stop was used up: the next run is not stopped
    assert not dj.checknrun().stopped


def test_stop_after_round_lets_the_round_finish(tmp_path: Path) -> None:
    dj = DoJobber()
    ran: list[str] = []

    class First(Job):
        TRIES = 1

        def Check(self) -> None:
            dj.stop_after_round()
            ran.append("First")
            raise RuntimeError("no")

    class Second(Job):
        TRIES = 1

        def Check(self) -> None:
            ran.append("Second")
            raise RuntimeError("no")

    class Root(Job):
        DEPS = [First, Second]

    dj.configure(Root)
    result = dj.converge(backoff=0)
    assert result.verdict is Verdict.INTERRUPTED and len(result.rounds) == 1
    assert ran == ["First", "First", "Second", "Second"]  # check + recheck each


def test_ctrl_c_during_a_wait(tmp_path: Path) -> None:
    """A real SIGINT to this process while converge() waits."""
    root = counting_graph(tmp_path, {"Never": 10**6})

    class Interrupt(Listener):
        def round_waiting(self, round: RoundInfo, seconds: float) -> None:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    heard = Heard()
    dj = DoJobber()
    dj.configure(root, listeners=[Interrupt(), heard])
    with pytest.raises(KeyboardInterrupt):
        dj.converge(backoff=3600)
    result = dj.converge_result
    assert result is not None and result.verdict is Verdict.INTERRUPTED
    assert len(result.rounds) == 1 and result.waits == [3600]
    assert heard.events[-1] == ("done", Verdict.INTERRUPTED)


def test_rounds_are_grouped_in_the_records(tmp_path: Path) -> None:
    db = tmp_path / "records.db"
    root = counting_graph(tmp_path, {"A": 3})
    dj = DoJobber()
    dj.configure(root, records=db)
    result = dj.converge(backoff=FAST)
    dj.checknrun()  # a lone run after the session
    with RecordStore(db) as store:
        runs = store.runs()
    assert [(r.session, r.round) for r in runs] == [
        (None, None), (result.session, 3), (result.session, 2), (result.session, 1),
    ]
    assert [r.outcome for r in runs[1:]] == ["converged", "not_converged", "not_converged"]


def test_converge_checks_its_options() -> None:
    dj = DoJobber()
    with pytest.raises(ConfigurationError, match="max_rounds"):
        dj.converge(max_rounds=0)
    with pytest.raises(ConfigurationError, match="within"):
        dj.converge(within="soon")
    with pytest.raises(ConfigurationError, match="backoff"):
        dj.converge(backoff="10s..5s")
    with pytest.raises(ConfigurationError, match="max_stuck_rounds"):
        dj.converge(max_stuck_rounds=0)


def test_failure_signature_ignores_passing_jobs(tmp_path: Path) -> None:
    root = counting_graph(tmp_path, {"A": 2})
    dj = DoJobber()
    dj.configure(root)
    first = dj.checknrun()
    assert failure_signature(first) == {("A", "RuntimeError", "A not there yet (1 of 2)"), "Root"}
    assert failure_signature(dj.checknrun()) == frozenset()


# -- Backoff -------------------------------------------------------------


def test_backoff_waits_grow_to_the_maximum() -> None:
    policy = Backoff(2, 3, 50, 0)
    assert [policy.delay(n) for n in range(1, 6)] == [2, 6, 18, 50, 50]
    assert policy.delay(10_000) == 50  # no overflow


def test_backoff_jitter_stays_within_bounds() -> None:
    import random

    policy = Backoff(10, 2, 100, 0.25)
    rng = random.Random(7)
    waits = [policy.delay(2, rng) for _ in range(200)]
    assert all(15 <= w <= 25 for w in waits)
    assert len(set(waits)) > 100


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400),
     ("250ms", 0.25), ("2d", 172800), (" 1m 30s ", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "-3s", "5m2", "m"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"30s, 5m, 1h|>= 0"):
        parse_duration(text, "--within")


def test_backoff_parse_and_of() -> None:
    assert Backoff.parse("5s..10m") == Backoff(5, 2, 600, 0.1)
    assert Backoff.parse("30s") == Backoff(30, 1, 30, 0)
    assert Backoff.of(2) == Backoff(2, 1, 2, 0) and Backoff.of(2).constant
    assert Backoff.of(timedelta(seconds=3)).delay(5) == 3
    assert str(Backoff.parse("5s..10m")) == "5s..600s (x2 +-10%)"
    with pytest.raises(ValueError, match="MAX is below INITIAL"):
        Backoff.parse("10m..5s")
    with pytest.raises(ValueError, match="factor"):
        Backoff(1, 0.5, 2)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1, 2, 2, 1.5)
    with pytest.raises(ValueError, match="max"):
        Backoff(10, 2, 5)


def test_history_shows_a_session_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dojobber._main import main

    db = tmp_path / "records.db"
    root = counting_graph(tmp_path, {"A": 3})
    dj = DoJobber()
    dj.configure(root, records=db)
    dj.checknrun()  # run 1: on its own
    dj.converge(backoff=FAST)  # runs 2-3: one session of 2 rounds (A passes at 3)
    capsys.readouterr()
    assert main(["history", "--records", str(db)]) == 0
    out = capsys.readouterr().out
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()
            if re.match(r"\s*\d+(-\d+)?\s+\d\d-\d\d ", line)]
    assert len(rows) == 2, out
    # Run, Started, Root, Outcome, Rnds, Jobs, ...
    assert rows[0][0] == "2-3" and rows[0][3] == "converged" and rows[0][4] == "2", out
    assert rows[1][0] == "1"
    assert main(["show", "3", "--records", str(db)]) == 0
    assert "round 2 of converge session" in capsys.readouterr().out


# -- GiveUp and Backoff inside one run ----------------------------------------


@pytest.mark.parametrize("how", ["inline", "threads", "processes"])
def test_a_job_that_gives_up_is_not_tried_again(how: str, tmp_path: Path) -> None:
    import concurrent.futures as cf

    import dojobber
    from tests import parallel_jobs

    dj = DoJobber()
    if how == "processes":
        with cf.ProcessPoolExecutor(2) as pool:
            dj.configure(parallel_jobs.GivesUp, executor=pool)
            dj.set_args(tmp=str(tmp_path))
            result = dj.checknrun()
    else:
        dj.configure(parallel_jobs.GivesUp, workers=2 if how == "threads" else 1)
        dj.set_args(tmp=str(tmp_path))
        result = dj.checknrun()
    job = result["GivesUp"]
    assert job.tries == 1 and (tmp_path / "tries").read_text() == "1"
    assert dojobber.gave_up(job.exception)
    if how == "processes":  # it did not pickle: it came back as a RemoteError
        assert isinstance(job.exception, dojobber.RemoteError)


def test_retry_delay_may_be_a_growing_backoff() -> None:
    import time

    starts: list[float] = []

    class Flaky(Job):
        TRIES = 4
        RETRY_DELAY = Backoff(0.02, 3, 1, 0)

        def Check(self) -> None:
            if self._check_phase == "check":
                starts.append(time.monotonic())
            raise RuntimeError("flaky")

        def Run(self) -> None:
            pass

    dj = DoJobber()
    dj.configure(Flaky)
    assert dj.jobs.backoffs == {0: Flaky.RETRY_DELAY} and dj.jobs.delays == [0.02]
    assert dj.checknrun()["Flaky"].tries == 4
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # (lower bounds only: each retry waited at least its policy's wait)
    assert gaps[0] >= 0.02 and gaps[1] >= 0.06 and gaps[2] >= 0.18
    dj.configure(Flaky, default_retry_delay=Backoff(5, 1, 5, 0))  # a constant: plain seconds
    assert dj.jobs.delays == [0.02] and dj.jobs.backoffs == {0: Flaky.RETRY_DELAY}

    class Plain(Job):
        def Check(self) -> None:
            pass

    dj.configure(Plain, default_retry_delay=Backoff.of(7))
    assert dj.jobs.delays == [7.0] and dj.jobs.backoffs == {}
    dj.configure(Plain, default_retry_delay=Backoff(1, 2, 8, 0))
    assert dj.jobs.delays == [1.0] and dj.jobs.backoffs == {0: Backoff(1, 2, 8, 0)}
