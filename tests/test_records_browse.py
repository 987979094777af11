"""The records' browsing queries (what the web view reads): pages of runs
under filters, trends, job states and log lines after a given line, and
noticing another process's writes; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dojobber import DoJobber
from dojobber.records import Browsable, RecordsError, open_store
from tests.fakes.procs import wait_until
from tests.fakes.web import Fetch, Site


@pytest.fixture(params=["sqlite", "postgres"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where records go: a SQLite file, or a new PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "r.sqlite3")


def browse(location: str) -> Browsable:
    store = open_store(location)
    assert isinstance(store, Browsable)
    return store


def _run(path: str, root: type, **kwargs: object) -> int:
    dojob = DoJobber()
    dojob.configure(root, records=path)
    dojob.set_args(**kwargs)
    dojob.checknrun()
    if dojob.records is not None:
        dojob.records.close()
    with browse(path) as store:
        return store.resolve("last")


def test_find_runs_filters_pages_and_counts(path: str) -> None:
    ids = [_run(path, Site), _run(path, Fetch), _run(path, Site, host="b")]
    with browse(path) as store:
        runs, total = store.find_runs()
        assert [r.id for r in runs] == ids[::-1] and total == 3
        runs, total = store.find_runs(root="Site", limit=1)
        assert [r.id for r in runs] == [ids[2]] and total == 2
        runs, total = store.find_runs(root="Site", limit=1, offset=1)
        assert [r.id for r in runs] == [ids[0]]
        assert store.find_runs(outcome="converged")[1] == 1
        assert store.find_runs(since=time.time() + 60)[1] == 0
        assert store.find_runs(until=time.time() + 60)[1] == 3
        assert store.roots() == ["Fetch", "Site"]


def test_trend_is_per_root_and_arguments(path: str) -> None:
    a1 = _run(path, Site, host="a")
    b1 = _run(path, Site, host="b")
    a2 = _run(path, Site, host="a")
    with browse(path) as store:
        assert store.trend(a2) == [(a1, "not_converged", 2), (a2, "not_converged", 2)]
        assert store.trend(b1) == [(b1, "not_converged", 2)]
        assert store.trend(a2, length=1) == [(a2, "not_converged", 2)]


def test_job_states_and_log_lines(path: str) -> None:
    rid = _run(path, Site)
    with browse(path) as store:
        assert {n: s[:2] for n, s in store.job_states(rid).items()} == {
            "Fetch": ("changed", 1), "Broken": ("failed", 2), "Site": ("blocked", 0)}
        lines = store.log_lines(rid)
        assert [ln.message for ln in lines] == [
            "fetching", "fetched into /srv/www", *["broken check"] * 4]
        seqs = [ln.seq for ln in lines]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [ln.seq for ln in store.log_lines(rid, after=seqs[1])] == seqs[2:]
        assert [ln.seq for ln in store.log_lines(rid, last=2)] == seqs[-2:]
        assert [ln.message for ln in store.log_lines(rid, job="Fetch", limit=1)] == ["fetching"]
        assert [ln.seq for ln in store.logs(rid)] == seqs


def test_change_marker_moves_when_another_connection_writes(path: str) -> None:
    _run(path, Fetch)
    with browse(path) as reader:
        before = reader.change_marker()
        assert reader.change_marker() == before
        reader.find_runs(), reader.job_states("last")  # its own reads change nothing
        assert reader.change_marker() == before
        _run(path, Fetch)
        wait_until(lambda: reader.change_marker() != before, what="the marker to move")


def test_resolve_host_pid_finds_the_newest_run_of_that_process(path: str) -> None:
    first = _run(path, Fetch)
    second = _run(path, Site)
    with browse(path) as store:
        run = store.run(first)
        assert store.resolve(f"{run.host}:{run.pid}") == second
        assert store.resolve(-2) == first
        with pytest.raises(RecordsError, match="no run nohost:1"):
            store.resolve("nohost:1")
        with pytest.raises(RecordsError, match="HOST:PID"):
            store.resolve("sideways")
