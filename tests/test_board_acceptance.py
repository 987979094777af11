"""The board's acceptance suite, run against every backend (SQLite file,
PostgreSQL server): posting, duplicates, priority, exclusive claims, leases
(stalled and dead workers), retries, cancel, waking idle workers."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber.board import Board, BoardError, SQLiteBoard, UnknownRequestError, open_board


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh board lives: a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "board.sqlite3")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def board(location: str) -> Iterator[Board]:
    board = open_board(location)
    yield board
    board.close()


def test_post_and_duplicate_while_waiting(board: Board) -> None:
    first = board.post("site.py:Root", ["a"], {"host": "x"})
    again = board.post("site.py:Root", ["a"], {"host": "x"})
    other = board.post("site.py:Root", ["a"], {"host": "y"})
    assert not first.duplicate and again.duplicate and again.id == first.id
    assert other.id != first.id and not other.duplicate
    req = board.get(first.id)
    assert (req.target, req.args, req.kwargs, req.state) == (
        os.path.abspath("site.py") + ":Root", ("a",), {"host": "x"}, "waiting")
    # once it is no longer waiting, the same post queues a new request
    claimed = board.claim("w", 30)
    assert claimed is not None and claimed.id == first.id
    assert not board.post("site.py:Root", ["a"], {"host": "x"}).duplicate


def test_claim_order_is_priority_then_age(board: Board) -> None:
    low = board.post("a:A").id
    high = board.post("b:B", priority=5).id
    low2 = board.post("c:C").id
    order = []
    while (req := board.claim("w", 30)) is not None:
        order.append(req.id)
    assert order == [high, low, low2]


def test_heartbeat_finish_and_lost_claims(board: Board) -> None:
    rid = board.post("a:A").id
    req = board.claim("w1", 30)
    assert req is not None and req.claimed_by == "w1" and req.attempts == 1
    assert board.heartbeat(rid, "w1", 30) == "ok"
    assert board.heartbeat(rid, "w2", 30) == "lost"
    assert board.finish(rid, "w2", True, "x") is None  # not w2's claim
    assert board.finish(rid, "w1", True, "converged", "run-7") == "done"
    done = board.get(rid)
    assert (done.state, done.outcome, done.runs) == ("done", "converged", ("run-7",))
    assert board.heartbeat(rid, "w1", 30) == "lost"


def test_an_outcome_with_a_nul_byte_is_kept(board: Board, location: str) -> None:
    rid = board.post("a:A").id
    assert board.claim("w", 30) is not None
    assert board.finish(rid, "w", False, "cannot start: bad \x00 byte") == "failed"
    # PostgreSQL text cannot hold NUL: it keeps the four characters \x00.
    nul = "\\x00" if location.startswith("postgresql:") else "\x00"
    assert board.get(rid).outcome == f"cannot start: bad {nul} byte"


def test_expired_lease_is_claimed_again(board: Board) -> None:
    rid = board.post("a:A", max_attempts=2).id
    assert board.claim("dead", 1.0) is not None
    assert board.claim("other", 30) is None  # lease still running
    time.sleep(1.2)
    again = board.claim("other", 30)
    assert again is not None and again.id == rid and again.attempts == 2
    assert board.heartbeat(rid, "dead", 30) == "lost"
    assert board.finish(rid, "dead", True, "late") is None


def test_every_claim_counts_and_a_lost_claim_never_outlives_its_attempts(
        board: Board) -> None:
    rid = board.post("a:A", max_attempts=2).id
    assert board.claim("dead1", 0.1) is not None
    time.sleep(0.2)
    again = board.claim("dead2", 0.1)
    assert again is not None and (again.attempts, again.max_attempts) == (2, 2)
    time.sleep(0.2)
    assert board.claim("third", 30) is None  # no attempts left: not claimed again
    req = board.get(rid)
    assert req.state == "failed" and req.attempts == 2
    assert req.outcome == "its worker was lost (no heartbeat within the lease) on attempt 2 of 2"


def test_cancelling_a_request_whose_worker_died_sticks(board: Board) -> None:
    first = board.post("a:A", max_attempts=3).id
    second = board.post("b:B", max_attempts=3).id
    assert board.claim("dead", 2.0) is not None
    assert board.claim("dead", 2.0) is not None
    # cancelled while its worker still had a lease: settled when it expires
    assert board.cancel(first) == "claimed"
    time.sleep(2.2)
    # cancelled after the lease expired: nobody runs it, cancelled at once
    assert board.cancel(second) == "cancelled"
    assert board.claim("next", 30) is None  # neither is claimed again
    for rid in (first, second):
        req = board.get(rid)
        assert req.state == "cancelled" and req.outcome == "cancelled (its worker was lost)"


def test_post_from_python_stores_an_absolute_path(
        board: Board, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site.py").write_text("from dojobber import Job\nclass Root(Job): pass\n")
    rid = board.post("site.py:Root").id
    assert board.get(rid).target == f"{tmp_path / 'site.py'}:Root"
    assert board.post("package.module:Root").id != rid  # a module name stays as it is


def test_failed_request_is_retried_then_stays_failed(board: Board) -> None:
    rid = board.post("a:A", max_attempts=2, retry_delay=0.2).id
    board.claim("w", 30)
    assert board.finish(rid, "w", False, "1 failed") == "waiting"
    assert board.claim("w", 30) is None  # not due before its retry delay
    time.sleep(0.25)
    assert board.claim("w", 30) is not None
    assert board.finish(rid, "w", False, "1 failed", "run-2") == "failed"
    assert board.get(rid).attempts == 2


def test_cancel_waiting_and_claimed(board: Board) -> None:
    waiting = board.post("a:A").id
    claimed = board.post("b:B", priority=1).id
    assert board.claim("w", 30) is not None
    assert board.cancel(waiting) == "cancelled"
    assert board.cancel(claimed) == "claimed"
    assert board.heartbeat(claimed, "w", 30) == "cancel"
    assert board.finish(claimed, "w", True, "stopped early") == "cancelled"
    assert board.claim("w", 30) is None
    with pytest.raises(UnknownRequestError, match="no request 99"):
        board.cancel(99)


def test_listing_by_state(board: Board) -> None:
    a = board.post("a:A").id
    b = board.post("b:B").id
    board.cancel(a)
    assert [r.id for r in board.requests(["waiting"])] == [b]
    assert [r.id for r in board.requests()] == [b, a]
    with pytest.raises(BoardError, match="unknown state"):
        board.requests(["nope"])


def test_corrupt_unwritable_and_non_json_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BoardError, match=r"cannot use .* as a board: .*not a database"):
        SQLiteBoard(bad)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BoardError, match="cannot use"):
        SQLiteBoard(blocker / "board.sqlite3")
    with pytest.raises(BoardError, match="JSON"):
        SQLiteBoard(tmp_path / "ok.sqlite3").post("a:A", [object()])


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    SQLiteBoard(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(BoardError, match="newer"):
        SQLiteBoard(path)


def test_sqlite_not_a_board_file_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "app.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    before = other.read_bytes()
    with pytest.raises(BoardError, match="not a dojobber board"):
        SQLiteBoard(other)
    assert other.read_bytes() == before


def test_non_json_arguments_and_bad_attempts(board: Board) -> None:
    with pytest.raises(BoardError, match="JSON"):
        board.post("a:A", [object()])
    with pytest.raises(BoardError, match="max_attempts"):
        board.post("a:A", max_attempts=0)
    assert board.requests() == []


def _claim_all(location: str, name: str, out: multiprocessing.Queue[list[int]]) -> None:
    board = open_board(location)
    got = []
    while (req := board.claim(name, 30)) is not None:
        got.append(req.id)
        board.finish(req.id, name, True, "ok")
    board.close()
    out.put(got)


@pytest.mark.slow
def test_four_processes_never_claim_the_same_request(location: str) -> None:
    board = open_board(location)
    ids = {board.post(f"m:J{i}").id for i in range(200)}
    board.close()
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(location, f"w{n}", out)) for n in range(4)]
    for proc in procs:
        proc.start()
    claimed = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    every = [rid for got in claimed for rid in got]
    assert sorted(every) == sorted(ids)  # each exactly once
    board = open_board(location)
    try:
        assert all(r.state == "done" and r.attempts == 1 for r in board.requests(limit=500))
    finally:
        board.close()


def test_an_idle_worker_is_woken_when_a_request_is_posted(location: str) -> None:
    """wait() returns when a request is posted from elsewhere (PostgreSQL:
    NOTIFY) or by its poll timeout (SQLite); a claim follows either way."""
    waiter, poster = open_board(location), open_board(location)
    try:
        waiter.wait(0.01)  # PostgreSQL: starts listening
        assert waiter.claim("w", 30) is None
        woke = threading.Event()
        timeout = 600.0 if "postgresql" in location else 0.2

        def idle() -> None:
            waiter.wait(timeout)
            woke.set()

        thread = threading.Thread(target=idle, daemon=True)
        thread.start()
        rid = poster.post("a:A").id
        thread.join(timeout=120)
        assert woke.is_set(), "the idle worker slept through the post"
        claimed = waiter.claim("w", 30)
        assert claimed is not None and claimed.id == rid
    finally:
        waiter.close()
        poster.close()


def test_wait_returns_when_stopped(board: Board) -> None:
    board.wait(0.01)
    stop = threading.Event()
    stop.set()
    waiting = threading.Thread(target=board.wait, args=(600, stop), daemon=True)
    waiting.start()
    waiting.join(timeout=60)  # not the ten minutes asked for: stop is set
    assert not waiting.is_alive(), "wait() ignored the stop event"


def test_retry_delay_may_be_a_growing_backoff(board: Board) -> None:
    import dataclasses

    from dojobber import Backoff

    policy = Backoff(100, 10, 5000, 0)
    rid = board.post("a:A", max_attempts=4, retry_delay=policy).id
    req = board.get(rid)
    assert req.retry_backoff == policy and req.retry_delay == 100
    assert board.claim("w", 30) is not None
    before = time.time()
    assert board.finish(rid, "w", False, "failed") == "waiting"
    waited = board.get(rid).not_before - before
    assert 90 < waited <= 101  # the first wait is the policy's initial one
    # the wait after the n-th failed attempt is the policy's delay(n)
    waits = [dataclasses.replace(req, attempts=n).retry_wait() for n in (1, 2, 3, 4)]
    assert waits == [100, 1000, 5000, 5000]
    # a constant policy is plain seconds
    plain = board.get(board.post("b:B", retry_delay=Backoff.of(7)).id)
    assert plain.retry_backoff is None and plain.retry_delay == 7



def test_a_version_1_board_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    SQLiteBoard(path).post("a:A", retry_delay=30)
    with sqlite3.connect(path) as db:  # back to what version 1 wrote
        db.execute("ALTER TABLE requests DROP COLUMN retry_backoff")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    board = SQLiteBoard(path)
    assert [r.retry_delay for r in board.requests()] == [30]
    assert board.requests()[0].retry_backoff is None
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)


def test_release_hands_a_claim_back_uncounted(board: Board) -> None:
    if not hasattr(board, "release"):
        pytest.skip(f"{type(board).__name__} has no release() yet")
    rid = board.post("a:A").id
    assert board.claim("w", 30) is not None
    assert not board.release(rid, "other")  # not its claim
    assert board.release(rid, "w")
    again = board.get(rid)
    assert (again.state, again.attempts, again.claimed_by) == ("waiting", 0, None)
    claimed = board.claim("w2", 30)
    assert claimed is not None and claimed.attempts == 1
