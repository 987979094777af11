"""Every file path the library takes expands a leading ``~`` (issue 18:
``records="~/deploy-records.sqlite3"`` made a directory named ``~``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojobber import DoJobber, DummyJob
from dojobber.board import open_board
from dojobber.lock import RunLock
from dojobber.records import RecordsListener, RecordStore


class Nothing(DummyJob):
    pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


def test_records_and_lock_paths_expand_the_home_directory(home: Path) -> None:
    dojob = DoJobber()
    dojob.configure(Nothing, records="~/deploy-records.sqlite3", lock="~/deploy.lock")
    dojob.checknrun()
    assert dojob.records is not None
    assert dojob.records.path == str(home / "deploy-records.sqlite3")
    assert (home / "deploy-records.sqlite3").is_file()
    assert (home / "deploy.lock").is_file()
    assert not (Path.cwd() / "~").exists()
    with RecordStore("~/deploy-records.sqlite3") as store:
        assert [run.root for run in store.runs()] == ["Nothing"]


def test_listener_lock_and_board_paths_expand(home: Path) -> None:
    assert RecordsListener("~/r.sqlite3").path == str(home / "r.sqlite3")
    assert RunLock("~/x.lock").path == str(home / "x.lock")
    board = open_board("~/board.sqlite3")
    board.post("site.py:Published")
    assert (home / "board.sqlite3").is_file()
    assert not (Path.cwd() / "~").exists()
