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
        assert run.outcome == "not_converged"
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
        assert run.outcome == "not_converged"
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
    assert done.returncode == EXIT_CLEANUP == 6, done.stderr
    data = json.loads(done.stdout)
    assert data["cleanup_failed"] == [
        {"job": "Dirty", "error": "OSError: cannot remove /tmp/scratch"}
    ]
    # The jobs converged; the run (cleanups included) failed, as recorded.
    assert data["converged"] is True and data["outcome"] == "not_converged"
    assert "Cleanup of Dirty failed: OSError: cannot remove /tmp/scratch" in done.stderr
    with RecordStore(tmp_path / "r.db") as store:
        run = store.run("last")
        assert run.outcome == "not_converged"
        (line,) = [line for line in store.logs(run.id) if line.phase == "cleanup"]
        assert line.job == "Dirty" and line.level == logging.ERROR
        assert line.message.startswith("Cleanup failed: OSError: cannot remove /tmp/scratch")
        assert "Traceback" in line.message


def _foreign_db(path: Path) -> bytes:
    """Another program's SQLite database (rollback journal, one table)."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('mine')")
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_records_never_touch_a_database_that_is_not_ours(tmp_path: Path) -> None:
    from dojobber.board import BoardError, SQLiteBoard
    from dojobber.records import RecordsError

    other = tmp_path / "other.db"
    before = _foreign_db(other)
    with pytest.raises(RecordsError, match="not a records database: it is another program"):
        RecordStore(other)
    dj = DoJobber()
    with pytest.raises(RecordsError, match="notes"):
        dj.configure(CleansUp, records=other)
    with pytest.raises(BoardError, match="is not a board: it is another program"):
        SQLiteBoard(other)
    assert other.read_bytes() == before  # not even switched to WAL
    assert not (tmp_path / "other.db-wal").exists()

    # A records database is not a board, and a board is not records.
    RecordStore(tmp_path / "records.db").close()
    records_bytes = (tmp_path / "records.db").read_bytes()
    with pytest.raises(BoardError, match="it is a dojobber records database, not a dojobber board"):
        SQLiteBoard(tmp_path / "records.db")
    assert (tmp_path / "records.db").read_bytes() == records_bytes
    SQLiteBoard(tmp_path / "board.db")
    with pytest.raises(RecordsError, match="it is a dojobber board, not a dojobber records"):
        RecordStore(tmp_path / "board.db")


def test_a_records_database_from_before_the_mark_is_still_ours(tmp_path: Path) -> None:
    import sqlite3

    from dojobber.records._schema import MIGRATIONS, migrate

    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, MIGRATIONS)  # as an older dojobber made it: no application_id
    conn.close()
    dj = DoJobber()
    dj.configure(CleansUp, records=old)
    assert dj.checknrun().success()
    with RecordStore(old) as store:
        assert store.run("last").outcome == "converged"


def test_records_board_and_lock_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    from dojobber.board import SQLiteBoard

    old = os.umask(0o022)
    try:
        dj = DoJobber()
        dj.configure(CleansUp, records=tmp_path / "r.db", lock=tmp_path / "run.lock")
        dj.checknrun()
        SQLiteBoard(tmp_path / "b.db").post("x.py:Root")
    finally:
        os.umask(old)
    for name in ("r.db", "r.db-wal", "r.db-shm", "run.lock", "b.db"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


class LogsADsn(Job):
    def Check(self, dsn: str = "", **kw: object) -> str:
        logging.getLogger("dsn").info("connecting to %s", dsn)
        return dsn


def test_url_passwords_are_masked_in_recorded_arguments_logs_and_results(
    tmp_path: Path
) -> None:
    from dojobber.records import RecordsListener, mask_urls

    assert mask_urls("see https://u:p@h/x and ftp://h/y") == "see https://u:***@h/x and ftp://h/y"
    dsn = "postgresql://app:S3cr3t@db/prod"
    listener = RecordsListener(tmp_path / "r.db", argv=["--arg", f"dsn={dsn}", dsn])
    dj = DoJobber()
    dj.configure(LogsADsn, listeners=[listener])
    dj.set_args(dsn=dsn)
    assert dj.checknrun().success()
    listener.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the WAL too, if any
    assert b"S3cr3t" not in raw
    with RecordStore(tmp_path / "r.db") as store:
        run = store.run("last")
        assert run.argv == ["--arg", "dsn=postgresql://app:***@db/prod",
                            "postgresql://app:***@db/prod"]
        assert run.args == {"args": [], "kwargs": {"dsn": "postgresql://app:***@db/prod"}}
        (line,) = store.logs(run.id)
        assert line.message == "connecting to postgresql://app:***@db/prod"
        assert store.job(run.id, "LogsADsn").result == "'postgresql://app:***@db/prod'"


@pytest.mark.parametrize("delay", [float("inf"), 1e300, float("nan"), -1])
def test_an_impossible_retry_delay_is_refused_at_configure(delay: float) -> None:
    from dojobber import InvalidRetryDelayError

    Waits = type("Waits", (Job,), {"RETRY_DELAY": delay, "Check": lambda self: None})
    with pytest.raises(InvalidRetryDelayError, match=r"Waits: RETRY_DELAY is .* from 0 to 1e9"):
        DoJobber().configure(Waits)


def test_deps_as_a_generator_is_an_error_naming_the_job() -> None:
    from dojobber import DepsIteratorError, DepsNotIterableError

    Once = type("Once", (Job,), {"DEPS": (dep for dep in [CleansUp, ExitsInCheck])})
    with pytest.raises(DepsIteratorError, match=r"Once\.DEPS is a one-shot iterator") as err:
        DoJobber().configure(Once)
    assert isinstance(err.value, DepsNotIterableError)
    Kept = type("Kept", (Job,), {"DEPS": list(dep for dep in [CleansUp, ExitsInCheck])})
    for _ in range(2):  # a list is read by every configure()
        dj = DoJobber()
        dj.configure(Kept)
        assert set(dj.jobs.names) == {"CleansUp", "ExitsInCheck", "Kept"}


class InterruptsInRun(Job):
    TRIES = 1

    def Check(self) -> None:
        raise RuntimeError("not yet")

    def Run(self) -> None:
        raise KeyboardInterrupt


class InterruptRoot(Job):
    DEPS = [CleansUp, InterruptsInRun]

    def Check(self) -> None:
        pass


@pytest.mark.parametrize("workers", [1, 4])
def test_keyboard_interrupt_inside_a_run_interrupts_the_run_whatever_the_workers(
        tmp_path: Path, workers: int) -> None:
    from dojobber import RunOutcome

    CLEANED.clear()
    dj = DoJobber()
    dj.configure(InterruptRoot, records=tmp_path / "r.db", workers=workers)
    with pytest.raises(KeyboardInterrupt):  # not a failed job, not a CleanupError
        dj.checknrun()
    assert dj.result is not None and dj.result.outcome is RunOutcome.INTERRUPTED
    assert CLEANED == ["CleansUp"]  # the cleanups ran
    with RecordStore(tmp_path / "r.db") as store:
        assert store.run("last").outcome == "interrupted"
