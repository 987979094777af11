"""``dojobber run --until-converged`` and agent mode (``--every``): the
round display, the rounds summary and the agent's loop."""

from __future__ import annotations

import importlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from ..backoff import Backoff, parse_duration
from ..converge import ConvergeResult
from ..events import Listener, RoundInfo
from ..lock import LockHeldError
from ..results import JobStatus, RunResult

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.table import Table

    from ..dojobber import DoJobber
    from ..job import Job

__all__ = [
    "AgentSignals",
    "BackoffType",
    "DurationType",
    "RoundsDisplay",
    "agent_loop",
    "reload_root",
    "rounds_table",
    "rounds_text",
]


class DurationType(click.ParamType[float]):
    """``30s``, ``5m``, ``1h``, ``1h30m`` or seconds -> float seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value, f"--{param.name}" if param and param.name else "duration")
        except ValueError as err:
            self.fail(str(err).split(": ", 1)[-1], param, ctx)


class BackoffType(click.ParamType[Backoff]):
    """``INITIAL..MAX`` or one duration -> :class:`Backoff`."""

    name = "backoff"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Backoff:
        if isinstance(value, Backoff):
            return value
        try:
            return Backoff.parse(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def _failing(result: RunResult, limit: int = 5) -> str:
    names = [job.name for job in result.jobs.values() if job.status is JobStatus.FAILED]
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more"
                                        if len(names) > limit else "")
    return shown or "nothing failed"


def _of(round: RoundInfo) -> str:
    return f"round {round.number}" + (f"/{round.max_rounds}" if round.max_rounds else "")


class RoundsDisplay(Listener):
    """Tells the rounds of a session on ``stream``: a line when a round
    starts and when it ends (what still fails), then the wait, counting
    down live on a terminal (``console``: a rich console)."""

    def __init__(self, stream: TextIO, console: Console | None = None,
                 run_ids: Callable[[], int | None] | None = None) -> None:
        self.stream = stream
        self.console = console
        self.run_ids = run_ids
        #: Run id in the records of each round (when recorded).
        self.ids: list[int | None] = []
        self._live: Live | None = None
        self._until = 0.0
        self._next: RoundInfo | None = None
        self._last: RunResult | None = None

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def round_started(self, round: RoundInfo) -> None:
        self._stop_live()
        self.stream.write(f"{_of(round)}: started\n")
        self.stream.flush()

    def round_finished(self, round: RoundInfo, result: RunResult) -> None:
        self._last = result
        self.ids.append(self.run_ids() if self.run_ids is not None else None)
        if result.success():
            text = "converged"
        else:
            counts = result.counts()
            text = (f"{counts[JobStatus.FAILED]} failed, {counts[JobStatus.BLOCKED]} blocked;"
                    f" still failing: {_failing(result)}")
        self.stream.write(f"{_of(round)}: {text} ({result.duration:.2f}s)\n")
        self.stream.flush()

    def round_waiting(self, round: RoundInfo, seconds: float) -> None:
        self._until = time.monotonic() + seconds
        self._next = round
        if self.console is None:
            self.stream.write(f"next: {_of(round)} in {seconds:.1f}s\n")
            self.stream.flush()
            return
        from rich.live import Live

        self._live = Live(console=self.console, get_renderable=self.render,
                          refresh_per_second=4, transient=True)
        self._live.start()

    def render(self) -> RenderableType:
        """The countdown shown while the session waits."""
        from rich.text import Text

        left = max(0.0, self._until - time.monotonic())
        what = _of(self._next) if self._next is not None else "next round"
        failing = _failing(self._last) if self._last is not None else ""
        return Text.assemble((f"{what} in {left:.0f}s", "bold"), "  still failing: ",
                             (failing, "red"))

    def converge_finished(self, result: ConvergeResult) -> None:
        self._stop_live()
        self.stream.write(f"{result.summary()}\n")
        self.stream.flush()


def _round_rows(session: ConvergeResult, ids: list[int | None]) -> Iterator[tuple[str, ...]]:
    for n, run in enumerate(session.rounds, 1):
        counts = run.counts()
        outcome = "converged" if run.success() else (
            "interrupted" if run.interrupted or run.stopped else "failed")
        run_id = ids[n - 1] if n <= len(ids) else None
        yield (
            str(n), "" if run_id is None else str(run_id), outcome,
            str(counts[JobStatus.OK]), str(counts[JobStatus.CHANGED]),
            str(counts[JobStatus.FAILED]), str(counts[JobStatus.BLOCKED]),
            f"{run.duration:.2f}s",
            f"{session.waits[n - 1]:.1f}s" if n <= len(session.waits) else "",
        )


_HEAD = ("Round", "Run", "Outcome", "OK", "Changed", "Failed", "Blocked", "Time", "Then waited")


def rounds_table(session: ConvergeResult, ids: list[int | None]) -> Table:
    """The rounds of a session as a rich table, captioned with the verdict."""
    from rich.table import Table

    table = Table(title=session.summary(), title_justify="left", expand=False)
    for name in _HEAD:
        table.add_column(name, justify="left" if name == "Outcome" else "right")
    for row in _round_rows(session, ids):
        table.add_row(*row)
    return table


def rounds_text(session: ConvergeResult, ids: list[int | None]) -> str:
    """The rounds of a session as plain lines."""
    rows = [_HEAD, *_round_rows(session, ids)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(_HEAD))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([session.summary(), *lines]) + "\n"


def reload_root(target: str, old: type[Job]) -> type[Job]:
    """Load ``target`` (``FILE.py:Root`` / ``module:Root``) again, from its
    source as it is now."""
    from ..loader import load_root

    module = sys.modules.get(old.__module__)
    source = target.rpartition(":")[0] or target
    if module is not None and not source.endswith(".py") and os.sep not in source \
            and getattr(module, "__spec__", None) is not None:
        importlib.reload(module)  # a module on the path
        return load_root(target)
    sys.modules.pop(old.__module__, None)  # a file: load it afresh
    return load_root(target)


#: Set in the environment of the child that checks a script before the
#: agent restarts it (SIGHUP): ``main(Root)`` then only loads the graph.
CHECK_SCRIPT_ENV = "DOJOBBER_CHECK_SCRIPT"
#: How long that check may take.
CHECK_SCRIPT_TIMEOUT = 120.0


class RestartRequested(BaseException):
    """SIGHUP in the agent of a script run through ``main(Root)``: the
    script as it is now loads, so start it again (``os.execv``, same pid)
    once everything this process opened is closed.  Not an ``Exception``,
    so that nothing on its way up mistakes it for an error."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.argv = argv


class ScriptReloadError(Exception):
    """The script as it is now does not load: the agent keeps its jobs."""


def script_argv() -> list[str]:
    """The command line that started this script (interpreter options
    included), to start it again."""
    words = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return [sys.executable, *words[1:]]


def check_script_reload() -> NoReturn:
    """SIGHUP in a script's agent: load the script as it is now in a child
    (its ``main(Root)`` only builds the graph there); raise
    :class:`RestartRequested` when it loads, :class:`ScriptReloadError`
    (saying why) when it does not."""
    import subprocess

    argv = script_argv()
    try:
        done = subprocess.run(
            argv, env={**os.environ, CHECK_SCRIPT_ENV: "1"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=CHECK_SCRIPT_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ScriptReloadError(str(err)) from err
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ScriptReloadError(lines[-1] if lines else f"exit status {done.returncode}")
    raise RestartRequested(argv)


def restart(argv: list[str]) -> None:
    """Replace this process by ``argv`` (same pid: a service manager keeps
    following it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


class AgentSignals:
    """The agent's signals: SIGTERM ends it after the current round (a
    second SIGTERM stops the round after its running attempts), SIGHUP
    reloads the job file before the next round (which starts at once)."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.terminating = False
        self.reload = False
        self.dj: DoJobber | None = None

    def _term(self, signum: int, frame: FrameType | None) -> None:
        dj = self.dj
        if self.terminating and dj is not None:
            dj.stop()
        self.terminating = True
        if dj is not None:
            dj.stop_after_round()
        self.wake.set()

    def _hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload = True
        self.wake.set()

    @contextmanager
    def installed(self) -> Iterator[AgentSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old_term = signal.signal(signal.SIGTERM, self._term)
        old_hup = signal.signal(signal.SIGHUP, self._hup)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGHUP, old_hup)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until a signal comes."""
        self.wake.wait(seconds)
        self.wake.clear()


def agent_loop(
    dj: DoJobber,
    one_round: Callable[[DoJobber], tuple[int, str]],
    every: float,
    splay: float,
    stream: TextIO,
    reconfigure: Callable[[], DoJobber] | None,
) -> int:
    """Run ``one_round(dj)`` every ``every`` seconds (plus up to ``splay``
    at random) until SIGTERM; returns the exit status: 0 after SIGTERM,
    130 after Ctrl-C.  ``reconfigure`` makes a new DoJobber from the job
    file as it is now (SIGHUP), or raises :class:`RestartRequested` (a
    script: it goes up to :func:`dojobber.cli.main`, which starts the
    script again); None: reloading is not possible."""
    signals = AgentSignals()
    rounds = 0
    with signals.installed():
        while not signals.terminating:
            if signals.reload:
                signals.reload = False
                if reconfigure is None:
                    stream.write("agent: SIGHUP: a script reloads by restarting it\n")
                else:
                    try:
                        dj = reconfigure()
                        stream.write("agent: job file reloaded\n")
                    except RestartRequested:
                        stream.write("agent: SIGHUP: the script loads; starting it again\n")
                        stream.flush()
                        raise
                    except Exception as err:  # keep the jobs we have
                        stream.write(f"agent: job file not reloaded ({err}); keeping the last\n")
            signals.dj = dj
            rounds += 1
            started = time.monotonic()
            try:
                _code, line = one_round(dj)
            except LockHeldError as err:
                line = f"skipped: {err}"
            except KeyboardInterrupt:
                stream.write(f"agent: round {rounds} interrupted\n")
                return 130
            stream.write(f"agent: round {rounds}: {line}\n")
            stream.flush()
            if signals.terminating:
                break
            wait = max(0.0, every + random.uniform(0, splay) - (time.monotonic() - started))
            stream.write(f"agent: next round in {wait:.1f}s\n")
            stream.flush()
            try:
                signals.sleep(wait)
            except KeyboardInterrupt:
                stream.write("agent: interrupted\n")
                return 130
    stream.write(f"agent: stopped (SIGTERM) after {rounds} round{'' if rounds == 1 else 's'}\n")
    stream.flush()
    return 0
