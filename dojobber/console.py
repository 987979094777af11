"""Console output of a run: upstream-style per-phase lines on stderr.

``configure(verbose=True)`` attaches a :class:`ConsoleListener` that writes
``Job.check: pass`` / ``Job.run: fail`` / ``Job.recheck: fail "why"`` lines,
as upstream DoJobber does; ``debug=True`` adds tracebacks and Cleanup lines.

For the command line there are also :class:`RichProgress` (a live bar on a
terminal, needs rich from the ``cli`` extra), :class:`PlainProgress` (lines
for logs and pipes) and the end-of-run :func:`summary_table` /
:func:`summary_text`.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import TYPE_CHECKING, TextIO

from ._context import original_stream
from ._describe import exception_text, message
from .events import Listener, RunInfo
from .results import JobResult, JobStatus, RunResult, plan_line

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.table import Table

__all__ = [
    "ConsoleListener",
    "PlainProgress",
    "RichProgress",
    "summary_table",
    "summary_text",
]


def _indented(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error)).strip()
    return "  " + text.replace("\n", "\n  ")


class ConsoleListener(Listener):
    """Writes one line per phase (and tracebacks with ``debug``)."""

    def __init__(self, debug: bool = False, stream: TextIO | None = None) -> None:
        self.debug = debug
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else original_stream(sys.stderr)

    def phase_finished(
        self,
        job: str,
        phase: str,
        attempt: int,
        ok: bool,
        duration: float,
        error: BaseException | None,
    ) -> None:
        if ok and phase == "init":
            return  # only a failing constructor is worth a line
        line = f"{job}.{phase}: {'pass' if ok else 'fail'}"
        if error is not None and phase in ("recheck", "init"):
            line += f' "{message(error)}"'
        self.stream.write(line + "\n")
        if error is not None and self.debug and phase != "check":
            self.stream.write(f"  Error was:\n{_indented(error)}\n")

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        if ok and self.debug:
            self.stream.write(f"{job}.cleanup: pass\n")
        elif not ok:
            shown = '' if error is None else message(error)
            self.stream.write(f'{job}.cleanup: fail "{shown}"\n')


# ----------------------------------------------------------------------
# Progress and summary (the ``dojobber run`` command's display).
# rich is imported only when these are used (extra ``cli``).


def _status_style(status: JobStatus) -> str:
    return {
        JobStatus.OK: "green",
        JobStatus.CHANGED: "cyan",
        JobStatus.FAILED: "bold red",
        JobStatus.BLOCKED: "yellow",
        JobStatus.PENDING: "dim",
        JobStatus.WOULD_RUN: "magenta",
        JobStatus.NOT_CHECKED: "blue",
    }[status]


def _note(job: JobResult) -> str:
    """One line on a job in a summary: what it would do (check mode),
    why it waits, or its error."""
    if job.status is JobStatus.WOULD_RUN:
        if job.plan is not None and job.plan.strip():
            return f"would: {plan_line(job.plan)}"
        return f"Check said: {_first_line(job.exception)}"
    if job.status is JobStatus.NOT_CHECKED:
        return "not checked: depends on a change"
    return _first_line(job.exception)


def _first_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = exception_text(error) or ""
    return text.splitlines()[0] if text else ""


class _Tally(Listener):
    """Counts shared by the progress displays."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self.failed: list[str] = []
        self.counts: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        self.target = ""
        self.started = time.monotonic()

    def run_started(self, run: RunInfo) -> None:
        self.started = time.monotonic()
        self.total = len(run.jobs)
        self.done = 0
        self.running.clear()
        self.failed.clear()
        self.counts = dict.fromkeys(JobStatus, 0)
        self.target = run.target

    def job_started(self, job: str, attempt: int) -> None:
        self.running.setdefault(job, time.monotonic())

    def job_finished(self, result: JobResult) -> None:
        self.running.pop(result.name, None)
        self.done += 1
        self.counts[result.status] += 1
        if result.status is JobStatus.FAILED:
            self.failed.append(result.name)


class PlainProgress(_Tally):
    """Progress for logs and pipes: one line per job that changed, failed
    or was blocked (``[done/total] Job: status``); jobs that were already
    fine are only counted."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else original_stream(sys.stderr)

    def job_finished(self, result: JobResult) -> None:
        super().job_finished(result)
        if result.status is JobStatus.OK:
            return
        width = len(str(self.total))
        line = f"[{self.done:>{width}}/{self.total}] {result.name}: {result.status.label}"
        if result.tries > 1:
            line += f" after {result.tries} tries"
        if result.status is JobStatus.FAILED:
            line += f" ({_first_line(result.exception)})"
        elif result.status is JobStatus.WOULD_RUN:
            line += f" ({_note(result)})"
        self.stream.write(line + "\n")


class RichProgress(_Tally):
    """Live display on a terminal (rich): a bar of jobs done out of the
    total, the jobs running now, and the failures so far.  ``console`` is a
    :class:`rich.console.Console` (a recording one in tests)."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 8) -> None:
        super().__init__()
        from rich.console import Console

        self.console = console if console is not None else Console(
            file=original_stream(sys.stderr)
        )
        self.refresh_per_second = refresh_per_second
        self._live: Live | None = None
        #: Latest ``report_progress`` of each running job: (done, total, unit).
        self._progress: dict[str, tuple[float, float | None, str]] = {}

    def run_started(self, run: RunInfo) -> None:
        from rich.live import Live

        super().run_started(run)
        self._live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=self.refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
        self._progress[job] = (done, total, unit)

    def job_finished(self, result: JobResult) -> None:
        super().job_finished(result)
        self._progress.pop(result.name, None)

    def run_finished(self, result: RunResult) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def bar_style(self) -> str:
        """The bar's colour by how the run goes: red once a job failed,
        yellow while jobs are blocked, magenta once a dry run found a job
        that would run, else green."""
        if self.counts[JobStatus.FAILED]:
            return "red"
        if self.counts[JobStatus.BLOCKED]:
            return "yellow"
        if self.counts[JobStatus.WOULD_RUN]:
            return "magenta"
        return "green"

    def timing(self, now: float | None = None) -> str:
        """Elapsed time, and an estimate of the time left from the pace so
        far (once a job finished)."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        text = f"{_clock(elapsed)} elapsed"
        if 0 < self.done < self.total:
            left = elapsed / self.done * (self.total - self.done)
            text += f", ~{_clock(left)} left"
        return text

    def render(self) -> RenderableType:
        """What the live display shows now."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        style = self.bar_style()
        grid.add_row(
            Text(self.target, style="bold"),
            ProgressBar(total=max(self.total, 1), completed=self.done, width=30,
                        complete_style=style, finished_style=style),
            Text(f"{self.done}/{self.total} jobs"),
            Text(self.timing(), style="dim"),
            Text(
                ", ".join(
                    f"{n} {s.label}" for s, n in self.counts.items() if n and s is not JobStatus.OK
                )
            ),
        )
        body = Table.grid()
        body.add_row(grid)
        if self.running:
            names = list(self.running)
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            body.add_row(Text(f"running: {shown}", style="dim"))
        for job, (done, total, unit) in list(self._progress.items())[:4]:
            row = Table.grid(padding=(0, 1))
            amount = f"{_amount(done, unit)}" + (f" / {_amount(total, unit)}" if total else "")
            if total:
                row.add_row(Text(f"  {job}"), ProgressBar(total=total, completed=done, width=20),
                            Text(amount))
            else:
                row.add_row(Text(f"  {job}"), Text(amount))
            body.add_row(row)
        if self.failed:
            shown = ", ".join(self.failed[-6:])
            more = f" (+{len(self.failed) - 6} earlier)" if len(self.failed) > 6 else ""
            body.add_row(Text(f"failed so far: {shown}{more}", style="red"))
        return body


def _clock(seconds: float) -> str:
    """``75.3`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _amount(value: float, unit: str) -> str:
    """``1536, "B"`` -> ``1.5 KiB``; other units as they are."""
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi"):
            if abs(value) < 1024 or prefix == "Gi":
                return f"{value:.0f} B" if not prefix else f"{value:.1f} {prefix}B"
            value /= 1024
    return f"{value:g} {unit}".rstrip()


#: The jobs a summary lists, in this order (the rest simply passed).
_LISTED = (JobStatus.FAILED, JobStatus.WOULD_RUN, JobStatus.NOT_CHECKED, JobStatus.BLOCKED,
           JobStatus.CHANGED)


def _listed(result: RunResult) -> list[JobResult]:
    order = {status: n for n, status in enumerate(_LISTED)}
    return sorted(
        (job for job in result.jobs.values() if job.status in order),
        key=lambda job: order[job.status],
    )


def summary_table(result: RunResult, limit: int = 30) -> Table:
    """A rich table of the jobs that did not simply pass (failed, would
    run, not checked, blocked, changed; at most ``limit`` rows), captioned
    with the counts."""
    from rich.table import Table
    from rich.text import Text

    rows = _listed(result)
    table = Table(title=result.summary(), title_justify="left", expand=False)
    table.add_column("Job")
    table.add_column("Status")
    table.add_column("Tries", justify="right")
    table.add_column("Time", justify="right")
    table.add_column("Error" if not result.no_act else "Would do / error")
    for job in rows[:limit]:
        table.add_row(
            job.name,
            Text(job.status.label, style=_status_style(job.status)),
            str(job.tries),
            f"{job.duration:.2f}s" if job.tries else "",
            _note(job),
        )
    if len(rows) > limit:
        table.add_row(f"... and {len(rows) - limit} more", "", "", "", "")
    if not rows:
        table.add_row(Text("(every job was already fine)", style="dim"), "", "", "", "")
    return table


def summary_text(result: RunResult, limit: int = 30) -> str:
    """The summary as plain lines (no terminal): counts, then the jobs that
    failed, would run (with every line of their Plan), were not checked,
    blocked or changed."""
    lines = [result.summary()]
    rows = _listed(result)
    width = max([8, *(len(job.status.label) for job in rows[:limit])])
    for job in rows[:limit]:
        note = _note(job)
        lines.append(
            f"  {job.status.label:<{width}} {job.name}"
            + (f" ({job.tries} tries)" if job.tries > 1 else "")
            + (f": {note}" if note else "")
        )
        if job.status is JobStatus.WOULD_RUN and job.plan is not None:
            lines.extend(f"  {'':<{width}}   {more}" for more in job.plan.strip().splitlines()[1:])
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more")
    return "\n".join(lines) + "\n"
