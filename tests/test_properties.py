"""Engine properties on random DAGs with scripted outcomes (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.helpers import converge
from tests.strategies import TRIES, Script, build, expected_status, scripts


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(scripts())
def test_jobs_run_only_after_their_dependencies_passed(script: Script) -> None:
    events: list[tuple[str, int]] = []
    converge(build(script, events), tries=TRIES)
    passed: set[int] = set()
    for kind, i in events:
        if kind == "check":
            assert all(d in passed for d in script.deps[i]), (i, events)
        elif kind == "pass":
            passed.add(i)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(scripts())
def test_status_blocking_and_call_counts_follow_the_rules(script: Script) -> None:
    events: list[tuple[str, int]] = []
    dojob = converge(build(script, events), tries=TRIES)
    want = expected_status(script)
    got = [dojob.nodestatus[f"J{i}"] for i in range(len(script.deps))]
    assert got == want
    for i, status in enumerate(want):
        checks = events.count(("check", i))
        runs = events.count(("run", i))
        if status is None:
            assert (checks, runs) == (0, 0)
        elif status:
            k = script.fix[i]
            assert (checks, runs) == ((1, 0) if k == 0 else (2 * k, k))
            assert dojob.noderesults[f"J{i}"] == f"result {i}"
        else:
            assert (checks, runs) == (2 * TRIES, TRIES)
            assert isinstance(dojob.nodeexceptions[f"J{i}"], RuntimeError)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(scripts(shuffle=True))
def test_results_do_not_depend_on_deps_order(script: Script) -> None:
    plain = converge(build(script, []), tries=TRIES)
    shuffled = converge(build(script, [], order=True), tries=TRIES)
    assert plain.nodestatus == shuffled.nodestatus
    assert plain.noderesults == shuffled.noderesults
    assert {k: type(v) for k, v in plain.nodeexceptions.items()} == {
        k: type(v) for k, v in shuffled.nodeexceptions.items()
    }


@settings(max_examples=60, deadline=None)
@given(scripts())
def test_no_act_checks_each_reachable_job_at_most_once(script: Script) -> None:
    events: list[tuple[str, int]] = []
    dojob = converge(build(script, events), tries=TRIES, no_act=True)
    assert not any(kind == "run" for kind, _ in events)
    for i in range(len(script.deps)):
        assert events.count(("check", i)) <= 1
        status = dojob.nodestatus[f"J{i}"]
        deps_ok = all(dojob.nodestatus[f"J{d}"] for d in script.deps[i])
        assert status == ((script.fix[i] == 0) if deps_ok else None)
