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
