"""Hostile input to the library: exceptions that cannot describe
themselves, SystemExit in job code, failing cleanups, foreign databases,
impossible options."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from dojobber import DoJobber, Job
from dojobber.console import ConsoleListener, PlainProgress
from dojobber.records import RecordStore


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    def __repr__(self) -> str:
        return "UnprintableError(42)"


class RaisesUnprintable(Job):
    TRIES = 1

    def Check(self) -> None:
        raise UnprintableError()


class UnprintableRoot(Job):
    DEPS = [RaisesUnprintable]

    def Check(self) -> None:
        pass


def test_an_exception_whose_str_raises_is_recorded_by_its_repr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    console, progress = io.StringIO(), io.StringIO()
    dj = DoJobber()
    dj.configure(
        UnprintableRoot, records=tmp_path / "r.db",
        listeners=[ConsoleListener(debug=True, stream=console), PlainProgress(progress)],
    )
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        result = dj.checknrun()
    assert "detached" not in caplog.text  # every listener stayed
    assert not result.success()
    assert result.jobs["RaisesUnprintable"].status.value == "failed"
    text = "UnprintableError: UnprintableError(42) (its str() raised RuntimeError)"
    assert text in result.report()
    assert 'RaisesUnprintable.recheck: fail "UnprintableError(42) (its str() raised' in \
        console.getvalue()
    assert text in progress.getvalue()
    assert dj.records is not None and dj.records.run_id is not None
    with RecordStore(tmp_path / "r.db") as store:
        run = store.run(dj.records.run_id)
        assert run.outcome == "failed"
        job = store.job(run.id, "RaisesUnprintable")
        assert job.exception == text
        assert job.traceback is not None and "Unprintable" in job.traceback


CLEANED: list[str] = []


class ExitsInCheck(Job):
    def Check(self) -> None:
        raise SystemExit(3)


class CleansUp(Job):
    def Check(self) -> None:
        pass

    def Cleanup(self) -> None:
        CLEANED.append("CleansUp")


class ExitRoot(Job):
    DEPS = [CleansUp, ExitsInCheck]

    def Check(self) -> None:
        pass


@pytest.mark.parametrize("workers", [1, 4])
def test_system_exit_in_a_check_fails_the_job_and_the_run_ends_cleanly(
    tmp_path: Path, workers: int
) -> None:
    CLEANED.clear()
    dj = DoJobber()
    dj.configure(ExitRoot, records=tmp_path / "r.db", workers=workers)
    result = dj.checknrun()  # no SystemExit comes out
    job = result.jobs["ExitsInCheck"]
    assert job.status.value == "failed" and isinstance(job.exception, SystemExit)
    assert job.tries == 1  # sys.exit() is not retried
    assert result.jobs["ExitRoot"].status.value == "blocked"
    assert CLEANED == ["CleansUp"]
    with RecordStore(tmp_path / "r.db") as store:
        run = store.run("last")
        assert run.outcome == "failed"
        assert store.job(run.id, "ExitsInCheck").exception == "SystemExit: 3"
        assert store.job(run.id, "CleansUp").status == "ok"


JOBS = '''
import sys
from dojobber import Job

class Exits(Job):
    def Check(self, **kw):
        sys.exit(3)

class Dirty(Job):
    def Check(self, **kw):
        pass

    def Cleanup(self):
        raise OSError("cannot remove /tmp/scratch")

class ExitRoot(Job):
    DEPS = [Exits]
    def Check(self, **kw):
        pass

class DirtyRoot(Job):
    DEPS = [Dirty]
    def Check(self, **kw):
        pass
'''


def test_sys_exit_in_a_job_never_becomes_the_commands_exit_status(tmp_path: Path) -> None:
    from tests.fakes.procs import run_python

    (tmp_path / "jobs.py").write_text(JOBS)
    done = run_python(["-m", "dojobber", "run", "jobs.py:ExitRoot", "--records",
                       str(tmp_path / "r.db")], cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # failed, not 3 ("lock held")
    assert "SystemExit: 3" in done.stdout


def test_cleanup_failures_are_recorded_reported_and_have_an_exit_status(
    tmp_path: Path
) -> None:
    import json

    from dojobber.cli import EXIT_CLEANUP
    from tests.fakes.procs import run_python

    (tmp_path / "jobs.py").write_text(JOBS)
    done = run_python(["-m", "dojobber", "run", "jobs.py:DirtyRoot", "--json", "--records",
                       str(tmp_path / "r.db")], cwd=tmp_path)
    assert done.returncode == EXIT_CLEANUP == 4, done.stderr
    data = json.loads(done.stdout)
    assert data["cleanup_failed"] == [
        {"job": "Dirty", "error": "OSError: cannot remove /tmp/scratch"}
    ]
    # The jobs converged; the run (cleanups included) failed, as recorded.
    assert data["converged"] is True and data["outcome"] == "failed"
    assert "Cleanup of Dirty failed: OSError: cannot remove /tmp/scratch" in done.stderr
    with RecordStore(tmp_path / "r.db") as store:
        run = store.run("last")
        assert run.outcome == "failed"
        (line,) = [line for line in store.logs(run.id) if line.phase == "cleanup"]
        assert line.job == "Dirty" and line.level == logging.ERROR
        assert line.message.startswith("Cleanup failed: OSError: cannot remove /tmp/scratch")
        assert "Traceback" in line.message
