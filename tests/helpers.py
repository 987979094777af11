"""Helpers to build job graphs for tests (not fixtures: plain functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dojobber import DummyJob, Job


def make_job(
    name: str,
    deps: Sequence[type[Job]] = (),
    *,
    log: list[tuple[str, str]] | None = None,
    fixed_after_runs: int | None = 0,
    base: type[Job] = Job,
    **attrs: Any,
) -> type[Job]:
    """A job whose Check passes once Run has been called ``fixed_after_runs``
    times (0: passes at once; None: never).  Calls are appended to ``log``
    as ``(name, "check" | "run")``; the count of Runs lives on the class."""

    def Check(self: Job, *args: Any, **kwargs: Any) -> str:
        if log is not None:
            log.append((name, "check"))
        runs = type(self).runs  # type: ignore[attr-defined]
        if fixed_after_runs is None or runs < fixed_after_runs:
            raise RuntimeError(f"{name} not yet ({runs} runs)")
        return f"{name} ok"

    def Run(self: Job, *args: Any, **kwargs: Any) -> None:
        if log is not None:
            log.append((name, "run"))
        type(self).runs += 1  # type: ignore[attr-defined]

    namespace: dict[str, Any] = {"DEPS": list(deps), "Check": Check, "Run": Run, "runs": 0}
    namespace.update(attrs)
    return type(name, (base,), namespace)


def root_of(*deps: type[Job], name: str = "Root") -> type[Job]:
    return type(name, (DummyJob,), {"DEPS": list(deps)})
