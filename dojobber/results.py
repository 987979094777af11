"""Typed results of a run: per job and for the whole run.

``DoJobber.nodestatus`` / ``nodeexceptions`` / ``noderesults`` (the upstream
dicts) are views of these; records, the console and the renderer read them.
"""

from __future__ import annotations

import enum
import time
import traceback as _tb
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ._describe import message

if TYPE_CHECKING:
    from .graph import JobGraph
    from .job import Job

__all__ = ["JobResult", "JobStatus", "Phase", "RunOutcome", "RunResult"]


class JobStatus(str, enum.Enum):
    """Where a job stands after (or before) a run."""

    #: Not tried: no run yet, outside the part of the graph that was run, or
    #: interrupted before its turn.
    PENDING = "pending"
    #: Its first Check passed: the fact already held, nothing ran.
    OK = "ok"
    #: It passed after a Run made its fact hold.
    CHANGED = "changed"
    #: Tried and failed every try (or failed its only Check with no_act).
    FAILED = "failed"
    #: Never tried because a job it depends on (directly or not) failed.
    BLOCKED = "blocked"
    #: Dry run (``no_act``): its first Check raised, so a real run would Run
    #: it.  Upstream's dicts see it as failed (``nodestatus`` False).
    WOULD_RUN = "would_run"
    #: Dry run: not checked, because a job it depends on (directly or not)
    #: would run first, so its Check now would tell nothing.
    NOT_CHECKED = "not_checked"

    @property
    def succeeded(self) -> bool:
        return self is JobStatus.OK or self is JobStatus.CHANGED

    @property
    def nodestatus(self) -> bool | None:
        """The upstream value: True succeeded, False failed (a dry run's
        would-run job too, as upstream says), None not tried."""
        if self is JobStatus.OK or self is JobStatus.CHANGED:
            return True
        if self is JobStatus.FAILED or self is JobStatus.WOULD_RUN:
            return False
        return None

    @property
    def label(self) -> str:
        """Words for people: "ok", "would run", "not checked", ..."""
        return self.value.replace("_", " ")


class RunOutcome(str, enum.Enum):
    """The verdict on one run: :attr:`RunResult.outcome`.

    Decided in one place (:attr:`RunResult.outcome`) and used by everything
    that reports a run: ``success()``, the summary line, the run records,
    the webhook, the picture's title, ``dojobber history`` and the exit
    status of ``dojobber run``.  The values are what the records and the
    JSON outputs store.

    To add a verdict: a member here with its :attr:`label`, its rule in
    :attr:`RunResult.outcome`, its exit status in
    ``dojobber.cli._base.EXIT_STATUS``; the tests go over every member, so
    a consumer that does not know the new one fails them.
    """

    #: The target passed (so every job it depends on passed) and no job of
    #: the run failed.  A dry run (``no_act``) converges when every Check
    #: passed: nothing would be done.  A run stopped or interrupted after
    #: that point still converged.
    CONVERGED = "converged"
    #: The run went to its end and some job failed (or was blocked by one).
    #: In a dry run: some job could not be checked (see CHANGES_PENDING).
    NOT_CONVERGED = "not_converged"
    #: Asked to stop (:meth:`DoJobber.stop`: a cancelled board request,
    #: SIGTERM to ``dojobber run``) before the target passed; jobs not
    #: reached are PENDING.
    STOPPED = "stopped"
    #: Cut short by Ctrl-C (KeyboardInterrupt), or (in the records) its
    #: process died before the end.
    INTERRUPTED = "interrupted"
    #: A dry run (check mode) that went to its end: some jobs would run
    #: (WOULD_RUN) and every other job passed its Check or was NOT_CHECKED
    #: behind one.  A dry run in which a job could not be checked (FAILED:
    #: its constructor, its Plan() or its TIMEOUT) is NOT_CONVERGED.
    CHANGES_PENDING = "changes_pending"

    @property
    def converged(self) -> bool:
        return self is RunOutcome.CONVERGED

    @property
    def label(self) -> str:
        """Words for people: "converged", "not converged", ..."""
        return _OUTCOME_LABELS[self]

    @classmethod
    def read(cls, value: str) -> RunOutcome:
        """The outcome stored as ``value``, also in older records (which
        stored a run that did not converge as ``failed``)."""
        return cls(_OLD_OUTCOMES.get(value, value))


_OUTCOME_LABELS = {
    RunOutcome.CONVERGED: "converged",
    RunOutcome.NOT_CONVERGED: "not converged",
    RunOutcome.STOPPED: "stopped before the end",
    RunOutcome.INTERRUPTED: "interrupted",
    RunOutcome.CHANGES_PENDING: "changes pending",
}
#: Values older versions stored, and what they are now.
_OLD_OUTCOMES = {"failed": RunOutcome.NOT_CONVERGED.value}


#: Phases are timed with the monotonic perf_counter; adding this turns its
#: readings into wall-clock seconds since the epoch (what :class:`Phase` holds).
WALL_OFFSET = time.time() - time.perf_counter()


class Phase(NamedTuple):
    """One phase of one attempt: ``init`` (the constructor; listed only
    when it raised, unless a listener hears phase events), ``check``,
    ``run`` or ``recheck``.  Without phase listeners an attempt's ``check``
    includes making the instance."""

    name: str
    attempt: int
    started: float  # wall clock, seconds since the epoch
    duration: float  # seconds
    ok: bool
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class JobResult:
    """Everything known about one job after a run."""

    name: str
    job: type[Job]
    status: JobStatus = JobStatus.PENDING
    #: Attempts made (an attempt lost with its worker is not counted).
    tries: int = 0
    #: The return value of the Check that passed.
    result: Any = None
    #: The exception of the last failed attempt (None once the job passed).
    exception: BaseException | None = None
    #: Every phase of every attempt, in order, each a plain tuple of a
    #: :class:`Phase`'s fields (read them by name through :attr:`phases`).
    #: Made once per phase of every job of a run: a named tuple costs about
    #: three times as much to make, 20% of a big run (measured with
    #: ``benchmarks/bench_engine.py --ab``).
    _phases: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    #: Attempts run again because the worker running them was lost.
    lost_attempts: int = 0
    _traceback: str | None = field(default=None, repr=False)
    #: Position of the job in its graph (dependencies first); -1 if unknown.
    index: int = -1
    #: Dry run, WOULD_RUN: what its Run would do, as its ``Plan()`` said
    #: (None when the job has no Plan or it returned None).
    plan: str | None = None

    @property
    def nodestatus(self) -> bool | None:
        return self.status.nodestatus

    @property
    def traceback(self) -> str | None:
        """Formatted traceback of :attr:`exception`, if any."""
        if self._traceback is None and self.exception is not None:
            self._traceback = "".join(_tb.format_exception(self.exception)).rstrip()
        return self._traceback

    @property
    def phases(self) -> list[Phase]:
        """Every phase of every attempt, in order."""
        return [Phase._make(raw) for raw in self._phases]

    @property
    def started(self) -> float | None:
        """When the first phase started (wall clock), None if none ran."""
        return self._phases[0][2] if self._phases else None

    @property
    def durations(self) -> dict[str, float]:
        """Seconds spent per phase name, summed over all attempts."""
        out: dict[str, float] = {}
        for phase in self.phases:
            out[phase.name] = out.get(phase.name, 0.0) + phase.duration
        return out

    @property
    def duration(self) -> float:
        """Seconds spent in all phases of all attempts."""
        return float(sum(raw[3] for raw in self._phases))


def plan_line(plan: str | None) -> str:
    """The first line of a job's Plan() text, for one-line displays."""
    lines = (plan or "").strip().splitlines()
    return lines[0] if lines else ""


@dataclass(eq=False)
class RunResult:
    """The outcome of one ``checknrun()``: every job of the graph, by name."""

    graph: JobGraph
    jobs: dict[str, JobResult]
    #: Name of the job ``checknrun`` was asked to converge.
    target: str
    no_act: bool = False
    started: float = 0.0
    finished: float = 0.0
    #: True when the run was stopped by Ctrl-C (KeyboardInterrupt).
    interrupted: bool = False
    #: True when the run was asked to stop (``DoJobber.stop()``) before the
    #: end; jobs not reached by then are PENDING.
    stopped: bool = False

    def __repr__(self) -> str:
        """Short: root, verdict, counts and time (``report()`` has the table)."""
        counts = self.counts()
        shown = " ".join(
            f"{status.value}={counts[status]}" for status in JobStatus if counts[status]
        )
        verdict = self.outcome.label
        if self.no_act:
            verdict += ", no_act"
        return (
            f"<RunResult {self.target}: {verdict}; {len(self.jobs)} jobs: {shown or 'none'}; "
            f"{self.duration:.2f}s>"
        )

    def __getitem__(self, name: str) -> JobResult:
        return self.jobs[name]

    def __iter__(self) -> Any:
        return iter(self.jobs.values())

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def attempted(self) -> list[JobResult]:
        """Jobs that were part of this run (not PENDING), in graph order."""
        return [job for job in self.jobs.values() if job.status is not JobStatus.PENDING]

    def counts(self) -> Counter[JobStatus]:
        return Counter(job.status for job in self.jobs.values())

    def failed(self) -> list[JobResult]:
        return [job for job in self.jobs.values() if job.status is JobStatus.FAILED]

    def would_run(self) -> list[JobResult]:
        """Dry run: the jobs a real run would Run now (WOULD_RUN), in graph order."""
        return [job for job in self.jobs.values() if job.status is JobStatus.WOULD_RUN]

    @property
    def outcome(self) -> RunOutcome:
        """The verdict on this run (the one every report uses).

        CONVERGED when the target passed and no job failed or was blocked;
        otherwise INTERRUPTED (Ctrl-C) before STOPPED (``stop()``) before
        CHANGES_PENDING (a dry run with jobs that would run, and none
        failed or blocked) before NOT_CONVERGED.
        """
        counts = self.counts()
        broken = counts[JobStatus.FAILED] or counts[JobStatus.BLOCKED]
        target = self.jobs.get(self.target)
        if target is not None and target.status.succeeded and not broken:
            return RunOutcome.CONVERGED
        if self.interrupted:
            return RunOutcome.INTERRUPTED
        if self.stopped:
            return RunOutcome.STOPPED
        if counts[JobStatus.WOULD_RUN] and not broken:
            return RunOutcome.CHANGES_PENDING
        return RunOutcome.NOT_CONVERGED

    def success(self) -> bool:
        """The run converged: :attr:`outcome` is CONVERGED."""
        return self.outcome is RunOutcome.CONVERGED

    def partial_success(self) -> bool:
        """At least one job of the run succeeded."""
        return any(job.status.succeeded for job in self.jobs.values())

    def failure(self) -> bool:
        return not self.success()

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def summary(self) -> str:
        """One line: how many jobs ended in each status."""
        counts = self.counts()
        parts = [
            f"{counts[status]} {status.label}"
            for status in JobStatus
            if counts[status] and status is not JobStatus.PENDING
        ]
        shown = ", ".join(parts) or "nothing run"
        line = f"{self.target}: {self.outcome.label} ({shown}) in {self.duration:.2f}s"
        would = counts[JobStatus.WOULD_RUN]
        if would:
            line += f"; {would} job{'' if would == 1 else 's'} would change"
        elif self.no_act and self.outcome is RunOutcome.CONVERGED:
            line += "; nothing would change"
        return line

    def report(self) -> str:
        """A plain-text table of the run's jobs, then the summary line."""
        rows = [("JOB", "STATUS", "TRIES", "TIME", "NOTE")]
        for job in self.attempted:
            note = ""
            if job.exception is not None:
                text = message(job.exception).strip().splitlines()
                note = f"{type(job.exception).__name__}: {text[0] if text else ''}"
            elif job.status is JobStatus.BLOCKED:
                note = "a dependency failed"
            elif job.status is JobStatus.NOT_CHECKED:
                note = "depends on a change"
            if job.status is JobStatus.WOULD_RUN:
                note = (f"would: {plan_line(job.plan)}" if job.plan and job.plan.strip()
                        else f"Check said: {note}")
            if job.lost_attempts:
                lost = f"{job.lost_attempts} attempt(s) run again: worker lost"
                note = f"{note}; {lost}" if note else lost
            rows.append(
                (job.name, job.status.value, str(job.tries), f"{job.duration * 1000:.1f}ms", note)
            )
        widths = [max(len(row[col]) for row in rows) for col in range(4)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
            for row in rows
        ]
        lines.append(self.summary())
        return "\n".join(line.rstrip() for line in lines)

    # Notebook display ------------------------------------------------------
    def _notebook_svg(self) -> tuple[str | None, str]:
        """The picture for Jupyter, made once (IPython asks every repr)."""
        cached: tuple[str | None, str] | None = self.__dict__.get("_svg")
        if cached is None:
            from .render import notebook_svg

            cached = self.__dict__["_svg"] = notebook_svg(self.graph, self)
        return cached

    def _repr_svg_(self) -> str | None:
        """The coloured job graph as SVG (None when Graphviz is missing, or
        the layout would hold the notebook more than two seconds).  Draws at
        most 300 jobs; use :func:`dojobber.render.render` for more."""
        return self._notebook_svg()[0]

    def _repr_html_(self) -> str:
        """A compact table (summary, counts, failed jobs) and the picture."""
        from .render import html_table

        svg, why = self._notebook_svg()
        return html_table(self.graph, self, svg, why)

    # The upstream dicts -------------------------------------------------
    def upstream_dicts(
        self,
    ) -> tuple[dict[str, bool | None], dict[str, BaseException], dict[str, Any]]:
        """``(nodestatus, nodeexceptions, noderesults)`` as upstream keeps them,
        in one pass over the jobs."""
        status: dict[str, bool | None] = {}
        exceptions: dict[str, BaseException] = {}
        results: dict[str, Any] = {}
        ok, changed, failed, pending, would_run = (
            JobStatus.OK, JobStatus.CHANGED, JobStatus.FAILED, JobStatus.PENDING,
            JobStatus.WOULD_RUN,
        )
        for name, job in self.jobs.items():
            state = job.status
            if state is ok or state is changed:
                status[name] = True
                results[name] = job.result
            elif state is failed or state is would_run:
                status[name] = False
                if job.exception is not None:
                    exceptions[name] = job.exception
            elif state is not pending:
                status[name] = None
        return status, exceptions, results

    def nodestatus(self) -> dict[str, bool | None]:
        return self.upstream_dicts()[0]

    def nodeexceptions(self) -> dict[str, BaseException]:
        return self.upstream_dicts()[1]

    def noderesults(self) -> dict[str, Any]:
        return self.upstream_dicts()[2]
