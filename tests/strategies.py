"""Hypothesis strategies the tests share: random job graphs with scripted
outcomes, the job classes that play them, and the statuses the rules give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from dojobber import DummyJob, Job

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


def storage_script(script: Script) -> type[Job]:
    """Like :func:`build`, but keeps run counts in global_storage (class
    attributes do not travel back from another process)."""
    classes: list[type[Job]] = []
    for i, deps in enumerate(script.deps):
        def Check(self: Job, i: int = i) -> str:
            if self.global_storage.get(f"runs{i}", 0) < script.fix[i]:  # type: ignore[union-attr]
                raise RuntimeError(f"J{i} needs {script.fix[i]} runs")
            return f"result {i}"

        def Run(self: Job, i: int = i) -> None:
            gs = self.global_storage
            gs[f"runs{i}"] = gs.get(f"runs{i}", 0) + 1  # type: ignore[union-attr,index]

        classes.append(type(f"J{i}", (Job,), {
            "DEPS": [classes[d] for d in deps], "Check": Check, "Run": Run,
        }))
    return type("Root", (DummyJob,), {"DEPS": classes[::-1]})
