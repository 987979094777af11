"""The Schedule alone: what comes out, given what the loop tells it."""

from __future__ import annotations

from dojobber._schedule import Schedule
from dojobber.graph import build

from .helpers import make_job, root_of


class Clock:
    """A clock the test moves by hand (the schedule only reads it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def names(schedule: Schedule, jobs: list[int]) -> list[str]:
    return [schedule.graph.names[i] for i in jobs]


def drain(schedule: Schedule) -> list[str]:
    """Pass every ready job as it comes out, lowest first; the order."""
    order = []
    while (i := schedule.next_ready()) is not None:
        order.append(schedule.graph.names[i])
        schedule.passed(i)
    return order


def test_ready_jobs_come_out_lowest_index_first_as_upstream_tries_them() -> None:
    # Root -> A -> a1, Root -> B -> b1: upstream tries a1, A, b1, B, Root (a
    # depth-first walk), not the layers a1, b1, A, B.
    a = make_job("A", [make_job("a1")])
    b = make_job("B", [make_job("b1")])
    graph = build(root_of(a, b))
    schedule = Schedule(graph, len(graph) - 1)
    assert schedule.jobs == 5
    assert drain(schedule) == ["a1", "A", "b1", "B", "Root"]
    assert not schedule.is_active()


def test_get_ready_hands_out_what_is_ready_and_no_more() -> None:
    c = make_job("C")
    graph = build(root_of(make_job("A", [c]), make_job("B", [c]), make_job("D")))
    schedule = Schedule(graph, len(graph) - 1)
    assert names(schedule, schedule.get_ready(10)) == ["C", "D"]
    assert schedule.get_ready(10) == [] and schedule.ready_count() == 0
    schedule.passed(graph.index["C"])
    assert schedule.ready_count() == 2
    assert names(schedule, schedule.get_ready(1)) == ["A"]
    assert names(schedule, schedule.get_ready(5)) == ["B"]


def test_a_failed_job_with_tries_left_waits_its_delay_in_the_retry_queue() -> None:
    clock = Clock()
    flaky = make_job("Flaky", TRIES=2, RETRY_DELAY=5)
    graph = build(root_of(flaky, make_job("Other")))
    schedule = Schedule(graph, len(graph) - 1, clock=clock)
    i = schedule.next_ready()
    assert i == graph.index["Flaky"] and schedule.attempt_number(i) == 1
    assert schedule.failed(i) == 105.0
    assert schedule.retry_due() == 105.0
    # The retry does not come out as ready: other work goes first.
    assert names(schedule, [schedule.next_ready() or 0]) == ["Other"]
    assert schedule.next_ready() is None
    assert schedule.take_retry() == i and schedule.attempt_number(i) == 2
    assert schedule.failed(i) is None  # second try of two: failed for good
    assert schedule.failed_jobs() == [i]
    assert schedule.blocked()[graph.index["Root"]] is True
    assert schedule.blocked()[i] is False  # failed, not blocked


def test_failed_without_retry_is_final_whatever_tries_are_left() -> None:
    graph = build(root_of(make_job("GivesUp", TRIES=9)))
    schedule = Schedule(graph, len(graph) - 1)
    i = schedule.next_ready()
    assert i is not None
    assert schedule.failed(i, retry=False) is None
    assert schedule.retry_due() is None and schedule.failed_jobs() == [i]


def test_no_act_never_retries() -> None:
    graph = build(root_of(make_job("Once", TRIES=5)))
    schedule = Schedule(graph, len(graph) - 1, no_act=True)
    i = schedule.next_ready()
    assert i is not None and schedule.failed(i) is None


def test_put_back_makes_a_job_ready_again_with_the_same_attempt_number() -> None:
    graph = build(root_of(make_job("A", TRIES=3), make_job("B")))
    schedule = Schedule(graph, len(graph) - 1, clock=Clock())
    a, b = schedule.get_ready(2)
    schedule.failed(a)
    assert schedule.take_retry() == a
    schedule.put_back(a)
    schedule.put_back(b)
    assert schedule.get_ready(5) == [a, b]
    assert schedule.attempt_number(a) == 2 and schedule.attempt_number(b) == 1


def test_stop_releases_nothing_more() -> None:
    graph = build(root_of(make_job("A"), make_job("B", TRIES=2)))
    schedule = Schedule(graph, len(graph) - 1, clock=Clock())
    a = schedule.next_ready()
    assert a is not None
    b = schedule.next_ready()
    assert b is not None
    schedule.failed(b)  # a retry waits
    schedule.stop()
    schedule.passed(a)  # an attempt out when the stop came still reports
    assert schedule.stopped
    assert schedule.next_ready() is None and schedule.get_ready(3) == []
    assert schedule.retry_due() is None and not schedule.is_active()


def test_a_run_below_one_job_releases_only_that_job_and_its_dependencies() -> None:
    a = make_job("A", [make_job("a1")])
    graph = build(root_of(a, make_job("B")))
    schedule = Schedule(graph, graph.index["A"])
    assert schedule.jobs == 2
    assert drain(schedule) == ["a1", "A"]  # Root's count never reaches zero


def test_blocked_is_what_depends_on_a_failure_and_was_never_released() -> None:
    bad = make_job("Bad", TRIES=1)
    mid = make_job("Mid", [bad])
    graph = build(root_of(mid, make_job("Fine")))
    schedule = Schedule(graph, len(graph) - 1)
    while (i := schedule.next_ready()) is not None:
        if graph.names[i] == "Bad":
            schedule.failed(i)
        else:
            schedule.passed(i)
    blocked = schedule.blocked()
    assert [n for n, hit in zip(graph.names, blocked, strict=True) if hit] == ["Mid", "Root"]


def test_a_retry_with_a_backoff_waits_its_growing_delay() -> None:
    from dojobber import Backoff

    clock = Clock()
    flaky = make_job("Flaky", TRIES=4, RETRY_DELAY=Backoff(initial=2, factor=3, max=10, jitter=0))
    graph = build(root_of(flaky))
    schedule = Schedule(graph, len(graph) - 1, clock=clock)
    i = schedule.next_ready()
    assert i is not None
    dues = []
    for _ in range(3):
        due = schedule.failed(i)
        assert due is not None
        dues.append(due - clock.now)
        assert schedule.take_retry() == i
    assert dues == [2.0, 6.0, 10.0]  # 2, 2*3, then capped at max
    assert schedule.failed(i) is None  # the fourth try of four
