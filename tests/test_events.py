from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from dojobber import DoJobber, JobResult, Listener, RunInfo, RunResult, report_progress
from tests.helpers import make_job, root_of


class Recorder(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def run_started(self, run: RunInfo) -> None:
        self.events.append(("run_started", run.target, run.jobs))

    def job_started(self, job: str, attempt: int) -> None:
        self.events.append(("job_started", job, attempt))

    def phase_finished(self, job: str, phase: str, attempt: int, ok: bool,
                       duration: float, error: BaseException | None) -> None:
        self.events.append(("phase", job, phase, ok))

    def job_finished(self, result: JobResult) -> None:
        self.events.append(("job_finished", result.name, result.status.value))

    def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
        self.events.append(("progress", job, done, total, unit))

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        self.events.append(("log", job, phase, record.getMessage()))

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        self.events.append(("cleanup", job, ok))

    def run_finished(self, result: RunResult) -> None:
        self.events.append(("run_finished", result.success()))


def test_events_arrive_in_order() -> None:
    rec = Recorder()
    a = make_job("A", fixed_after_runs=1, Cleanup=lambda self: None)
    dojob = DoJobber()
    dojob.configure(root_of(a), listeners=[rec])
    dojob.checknrun()
    assert rec.events == [
        ("run_started", "Root", ("A", "Root")),
        ("job_started", "A", 1),
        ("phase", "A", "init", True),
        ("phase", "A", "check", False),
        ("phase", "A", "run", True),
        ("phase", "A", "recheck", True),
        ("job_finished", "A", "changed"),
        ("job_started", "Root", 1),
        ("phase", "Root", "init", True),
        ("phase", "Root", "check", True),
        ("job_finished", "Root", "ok"),
        ("cleanup", "A", True),
        ("run_finished", True),
    ]


def test_blocked_jobs_are_reported_finished() -> None:
    rec = Recorder()
    bad = make_job("Bad", fixed_after_runs=None, TRIES=1)
    dojob = DoJobber()
    dojob.configure(root_of(bad), listeners=[rec])
    dojob.checknrun()
    finished = [e for e in rec.events if e[0] == "job_finished"]
    assert finished == [("job_finished", "Bad", "failed"), ("job_finished", "Root", "blocked")]


def test_listener_that_raises_is_detached_and_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Listener):
        calls = 0

        def job_started(self, job: str, attempt: int) -> None:
            Broken.calls += 1
            raise RuntimeError("listener bug")

    rec = Recorder()
    dojob = DoJobber()
    dojob.configure(root_of(make_job("A"), make_job("B")), listeners=[Broken(), rec])
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        dojob.checknrun()
    assert dojob.success()
    assert Broken.calls == 1
    assert sum("listener bug" in (r.exc_text or "") or "detached" in r.getMessage()
               for r in caplog.records) == 1
    assert ("run_finished", True) in rec.events


def test_log_records_and_progress_are_attributed_to_the_job() -> None:
    rec = Recorder()

    class Talker(make_job("Talker", fixed_after_runs=1)):  # type: ignore[misc]
        def Run(self) -> None:
            logging.getLogger("some.lib").warning("working on it")
            report_progress(1, 2, "steps")
            super().Run()

    logging.getLogger("outside").warning("not in a job")
    dojob = DoJobber()
    dojob.configure(Talker, listeners=[rec])
    dojob.checknrun()
    assert ("log", "Talker", "run", "working on it") in rec.events
    assert ("progress", "Talker", 1, 2, "steps") in rec.events
    assert not any(e[0] == "log" and e[3] == "not in a job" for e in rec.events)
    report_progress(1)  # outside a run: nothing happens, no error


def test_configure_refuses_non_listeners() -> None:
    from dojobber import ConfigurationError

    with pytest.raises(ConfigurationError, match="listeners"):
        DoJobber().configure(make_job("A"), listeners=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="workers=0"):
        DoJobber().configure(make_job("A"), workers=0)


def test_import_loads_no_optional_package() -> None:
    code = (
        "import sys, dojobber\n"
        "heavy = {'paramiko', 'libvirt', 'graphviz', 'dask', 'distributed', 'rich',"
        " 'requests', 'httpx', 'click', 'networkx'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""
