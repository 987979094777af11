"""What every records backend shares: the stored forms of runs, jobs and log
lines, the error, where records live by default, and the reading interface
(:class:`Store`) that the command line, the web view and ``stored_run`` use.

The backends are :mod:`dojobber.records.sqlite` (one file, the default)
and :mod:`dojobber.records.postgres` (the runs of many hosts); the SQL they
share is in :mod:`dojobber.records._sql`.  Every backend takes the
listener's writes as :class:`Batch` es (one transaction each, at most about
a second apart) and marks a run whose process died ``interrupted`` when the
records are next opened on its host.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .._paths import user_state_file
from ..errors import DojobberError
from ..results import RunOutcome

__all__ = [
    "ENV_VAR",
    "Batch",
    "Browsable",
    "JobRecord",
    "LogLine",
    "RecordsError",
    "RecordsWriter",
    "RunEnd",
    "RunRecord",
    "RunRow",
    "Store",
    "default_path",
]

#: Environment variable naming the records database (the CLI's default).
ENV_VAR = "DOJOBBER_RECORDS"

#: What the records say of a run still going (or whose end was not written).
RUNNING = "running"
#: Outcomes a run can have in the records: running, then its RunOutcome.
OUTCOMES = (RUNNING, *(outcome.value for outcome in RunOutcome))


class RecordsError(DojobberError):
    """The records database cannot be opened, read or written."""

    def __init__(self, path: str, reason: str, hint: str | None = None) -> None:
        self.path = path
        self.reason = reason
        if hint is None:
            hint = (
                f"pass another path (records=... / --records PATH, or set {ENV_VAR}) "
                "or fix the file's permissions"
            )
        super().__init__(f"run records at {path}: {reason}; {hint}")


def default_path() -> str:
    """Where the CLI keeps records: ``$DOJOBBER_RECORDS`` if set, else
    ``$XDG_STATE_HOME/dojobber/records.sqlite3`` (``~/.local/state`` when
    ``XDG_STATE_HOME`` is unset)."""
    return user_state_file(ENV_VAR, "records.sqlite3")


@dataclass
class RunRecord:
    """One run as stored."""

    id: int
    root: str
    target: str
    script: str | None
    argv: list[str]
    args: Any
    host: str
    user: str
    pid: int
    no_act: bool
    workers: int
    started: float
    finished: float | None
    outcome: str
    jobs: int
    ok: int
    changed: int
    failed: int
    blocked: int
    #: The converge session this run was a round of, and its round number
    #: (None for a run on its own).
    session: str | None = None
    round: int | None = None

    def __post_init__(self) -> None:
        if self.outcome != RUNNING:  # older records: "failed" is "not_converged"
            self.outcome = RunOutcome.read(self.outcome).value

    @property
    def verdict(self) -> RunOutcome | None:
        """:attr:`outcome` as a :class:`~dojobber.RunOutcome`; None while running."""
        return None if self.outcome == RUNNING else RunOutcome(self.outcome)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass
class JobRecord:
    """One job of one run as stored."""

    run_id: int
    name: str
    status: str
    tries: int
    started: float | None
    duration: float | None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    #: ``[phase, attempt, started, duration, ok, error]`` per phase.
    phases: list[list[Any]] = field(default_factory=list)
    #: Check mode (would_run): what the job's ``Plan()`` said its Run would do.
    plan: str | None = None


@dataclass
class LogLine:
    """One log record (or captured output line) of a job's phase."""

    job: str
    phase: str
    attempt: int
    created: float
    level: int
    logger: str
    message: str
    #: Its place among the run's lines (from :meth:`Browsable.log_lines`).
    seq: int = 0




def this_host() -> str:
    return socket.gethostname()


def this_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), else None;
    tells a live process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":  # zombie: dead, not yet reaped
        return -1
    return int(fields[19])


def process_alive(pid: int, start: int | None) -> bool:
    """Whether the process that wrote a run (``pid`` started at ``start``)
    still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start(pid)
    if now == -1:
        return False
    return start is None or now is None or now == start


class Store(Protocol):
    """Reading a records database, whatever its backend."""

    path: str

    def close(self) -> None: ...
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> None: ...
    def runs(self, root: str | None = None, limit: int = 20) -> list[RunRecord]: ...
    def run(self, run_id: int | str) -> RunRecord: ...
    def resolve(self, run_id: int | str) -> int: ...
    def jobs(self, run_id: int | str, status: str | None = None) -> list[JobRecord]: ...
    def job(self, run_id: int | str, name: str) -> JobRecord: ...
    def logs(self, run_id: int | str, job: str | None = None) -> list[LogLine]: ...
    def graph_data(self, run_id: int | str) -> dict[str, Any] | None: ...


class RunRow(NamedTuple):
    """The row a run starts with (``outcome`` is ``running``)."""

    root: str
    target: str
    script: str | None
    argv: str  # JSON list, secrets masked
    args: str  # JSON {"args": [...], "kwargs": {...}}, secrets masked
    host: str
    user: str
    pid: int
    pid_start: int | None
    no_act: bool
    workers: int
    started: float
    jobs: int
    session: str | None
    round: int | None


class RunEnd(NamedTuple):
    """How a run ended: the last update of its row."""

    finished: float
    outcome: str
    ok: int
    changed: int
    failed: int
    blocked: int


#: A graph to link to a run: ``(digest, root, data)``; ``data()`` makes the
#: stored JSON, called only when no graph with that digest is stored yet.
GraphRow = tuple[str, str, Callable[[], str]]


class Batch(NamedTuple):
    """One write of the records listener, one transaction: link ``graph``
    to the run, upsert ``jobs`` (one flat list of 7 values per job: run id,
    index, name, status, tries, started, duration) and ``details`` (run id,
    index, result, exception, traceback, phases JSON, plan), append ``logs`` (run
    id, job, phase, attempt, created, level, logger, message) and, with
    ``end``, close the run."""

    run_id: int
    graph: GraphRow | None
    jobs: list[Any]
    details: list[tuple[Any, ...]]
    logs: list[tuple[Any, ...]]
    end: RunEnd | None


class RecordsWriter(Protocol):
    """Writing a records database, whatever its backend: what
    :class:`~dojobber.records.RecordsListener` needs.  Each call is one
    transaction; rows come ready to bind."""

    path: str

    def close(self) -> None: ...

    def start_run(self, row: RunRow) -> int:
        """Insert a run; returns its id."""

    def write_batch(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction (see :class:`Batch`)."""


@runtime_checkable
class Browsable(Store, Protocol):
    """What the web view reads beyond :class:`Store`: pages of runs under
    filters, trends, and what changed in a running run.  Both backends
    (SQLite and PostgreSQL) offer it; ``isinstance(store, Browsable)``
    tells."""

    def __enter__(self) -> Browsable: ...
    def find_runs(
        self, *, root: str | None = None, outcome: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[RunRecord], int]: ...
    def roots(self) -> list[str]: ...
    def trend(self, run_id: int, length: int = 12) -> list[tuple[int, str, int]]: ...
    def job_states(self, run_id: int | str) -> dict[str, tuple[str, int, float | None]]: ...
    def log_lines(
        self, run_id: int | str, *, job: str | None = None, after: int = 0,
        last: int | None = None, limit: int = 1000,
    ) -> list[LogLine]: ...
    def change_marker(self) -> int: ...
