"""Engine properties on random DAGs with scripted outcomes (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dojobber import DoJobber, DummyJob, Job

TRIES = 3


@dataclass
class Script:
    """A random DAG: deps[i] lists earlier jobs; fix[i] = Runs job i needs
    before its Check passes (0: at once; > TRIES: never within its tries)."""

    deps: list[list[int]]
    fix: list[int]
    order: list[list[int]] = field(default_factory=list)  # a DEPS permutation


@st.composite
def scripts(draw: Any, shuffle: bool = False) -> Script:
    n = draw(st.integers(1, 10))
    deps = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)
    ]
    fix = [draw(st.sampled_from([0, 0, 1, 2, 3, TRIES + 1])) for _ in range(n)]
    script = Script(deps, fix)
    if shuffle:
        script.order = [draw(st.permutations(d)) for d in deps]
    return script


def build(script: Script, events: list[tuple[str, int]], order: bool = False) -> type[Job]:
    """Job classes for a script; events gets ("check"/"run"/"pass", i)."""
    classes: list[type[Job]] = []
    for i, deps in enumerate(script.deps):
        listed = script.order[i] if order else deps

        def Check(self: Job, i: int = i) -> str:
            events.append(("check", i))
            if type(self).runs < script.fix[i]:  # type: ignore[attr-defined]
                raise RuntimeError(f"J{i} needs {script.fix[i]} runs")
            events.append(("pass", i))
            return f"result {i}"

        def Run(self: Job, i: int = i) -> None:
            events.append(("run", i))
            type(self).runs += 1  # type: ignore[attr-defined]

        classes.append(
            type(f"J{i}", (Job,), {
                "DEPS": [classes[d] for d in listed], "Check": Check, "Run": Run, "runs": 0,
            })
        )
    return type("Root", (DummyJob,), {"DEPS": classes[::-1]})


def expected_status(script: Script) -> list[bool | None]:
    """The model: a job passes if all deps passed and it is fixed in time."""
    status: list[bool | None] = []
    for i, deps in enumerate(script.deps):
        if not all(status[d] for d in deps):
            status.append(None)
        else:
            status.append(script.fix[i] <= TRIES)
    return status


def converge(root: type[Job], **options: Any) -> DoJobber:
    dojob = DoJobber()
    dojob.configure(root, default_tries=TRIES, default_retry_delay=0, **options)
    dojob.checknrun()
    return dojob


@settings(max_examples=150, deadline=None)
@given(scripts())
def test_jobs_run_only_after_their_dependencies_passed(script: Script) -> None:
    events: list[tuple[str, int]] = []
    converge(build(script, events))
    passed: set[int] = set()
    for kind, i in events:
        if kind == "check":
            assert all(d in passed for d in script.deps[i]), (i, events)
        elif kind == "pass":
            passed.add(i)


@settings(max_examples=150, deadline=None)
@given(scripts())
def test_status_blocking_and_call_counts_follow_the_rules(script: Script) -> None:
    events: list[tuple[str, int]] = []
    dojob = converge(build(script, events))
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


@settings(max_examples=100, deadline=None)
@given(scripts(shuffle=True))
def test_results_do_not_depend_on_deps_order(script: Script) -> None:
    plain = converge(build(script, []))
    shuffled = converge(build(script, [], order=True))
    assert plain.nodestatus == shuffled.nodestatus
    assert plain.noderesults == shuffled.noderesults
    assert {k: type(v) for k, v in plain.nodeexceptions.items()} == {
        k: type(v) for k, v in shuffled.nodeexceptions.items()
    }


@settings(max_examples=60, deadline=None)
@given(scripts())
def test_no_act_checks_each_reachable_job_at_most_once(script: Script) -> None:
    events: list[tuple[str, int]] = []
    dojob = converge(build(script, events), no_act=True)
    assert not any(kind == "run" for kind, _ in events)
    for i in range(len(script.deps)):
        assert events.count(("check", i)) <= 1
        status = dojob.nodestatus[f"J{i}"]
        deps_ok = all(dojob.nodestatus[f"J{d}"] for d in script.deps[i])
        assert status == ((script.fix[i] == 0) if deps_ok else None)
