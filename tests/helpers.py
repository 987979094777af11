"""What the tests share (plain functions, not fixtures): making job graphs
and running them.  Hypothesis strategies are in :mod:`tests.strategies`,
real servers and processes in :mod:`tests.fakes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dojobber import DoJobber, DummyJob, Job, RunResult


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


def converge(
    root: type[Job],
    *args: Any,
    tries: int | None = None,
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> DoJobber:
    """Configure a DoJobber for ``root`` and run ``checknrun()`` once.

    ``args`` and ``kwargs`` go to ``set_args()``.  No delay between tries
    unless ``default_retry_delay`` is given; ``tries`` is ``default_tries``
    (3 when None).  Other keyword arguments go to ``configure()``."""
    options.setdefault("default_retry_delay", 0)
    if tries is not None:
        options["default_tries"] = tries
    dojob = DoJobber()
    dojob.configure(root, **options)
    dojob.set_args(*args, **(kwargs or {}))
    dojob.checknrun()
    return dojob


def converge_once(root: type[Job], **options: Any) -> DoJobber:
    """:func:`converge` with one try per job (a failure is final)."""
    return converge(root, tries=1, **options)


def run_once(root: type[Job], **options: Any) -> RunResult:
    """The :class:`RunResult` of :func:`converge_once`."""
    result = converge_once(root, **options).result
    assert result is not None
    return result
