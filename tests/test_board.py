"""The SQLite board: posting, exclusive claims, leases, retries, cancel."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from dojobber.board import BoardError, SQLiteBoard, UnknownRequestError


@pytest.fixture
def board(tmp_path: Path) -> SQLiteBoard:
    return SQLiteBoard(tmp_path / "board.sqlite3")


def test_post_and_duplicate_while_waiting(board: SQLiteBoard) -> None:
    first = board.post("site.py:Root", ["a"], {"host": "x"})
    again = board.post("site.py:Root", ["a"], {"host": "x"})
    other = board.post("site.py:Root", ["a"], {"host": "y"})
    assert not first.duplicate and again.duplicate and again.id == first.id
    assert other.id != first.id and not other.duplicate
    req = board.get(first.id)
    assert (req.target, req.args, req.kwargs, req.state) == (
        "site.py:Root", ("a",), {"host": "x"}, "waiting")
    # once it is no longer waiting, the same post queues a new request
    claimed = board.claim("w", 30)
    assert claimed is not None and claimed.id == first.id
    assert not board.post("site.py:Root", ["a"], {"host": "x"}).duplicate


def test_claim_order_is_priority_then_age(board: SQLiteBoard) -> None:
    low = board.post("a:A").id
    high = board.post("b:B", priority=5).id
    low2 = board.post("c:C").id
    order = []
    while (req := board.claim("w", 30)) is not None:
        order.append(req.id)
    assert order == [high, low, low2]


def test_heartbeat_finish_and_lost_claims(board: SQLiteBoard) -> None:
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


def test_expired_lease_is_claimed_again(board: SQLiteBoard) -> None:
    rid = board.post("a:A").id
    assert board.claim("dead", 0.2) is not None
    assert board.claim("other", 30) is None  # lease still running
    time.sleep(0.3)
    again = board.claim("other", 30)
    assert again is not None and again.id == rid and again.attempts == 2
    assert board.heartbeat(rid, "dead", 30) == "lost"
    assert board.finish(rid, "dead", True, "late") is None


def test_failed_request_is_retried_then_stays_failed(board: SQLiteBoard) -> None:
    rid = board.post("a:A", max_attempts=2, retry_delay=0.2).id
    board.claim("w", 30)
    assert board.finish(rid, "w", False, "1 failed") == "waiting"
    assert board.claim("w", 30) is None  # not due before its retry delay
    time.sleep(0.25)
    assert board.claim("w", 30) is not None
    assert board.finish(rid, "w", False, "1 failed", "run-2") == "failed"
    assert board.get(rid).attempts == 2


def test_cancel_waiting_and_claimed(board: SQLiteBoard) -> None:
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


def test_listing_by_state(board: SQLiteBoard) -> None:
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


def _claim_all(path: str, name: str, out: multiprocessing.Queue[list[int]]) -> None:
    board = SQLiteBoard(path)
    got = []
    while (req := board.claim(name, 30)) is not None:
        got.append(req.id)
        board.finish(req.id, name, True, "ok")
    out.put(got)


def test_two_processes_never_claim_the_same_request(tmp_path: Path) -> None:
    path = str(tmp_path / "board.sqlite3")
    board = SQLiteBoard(path)
    ids = {board.post(f"m:J{i}").id for i in range(200)}
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(path, f"w{n}", out)) for n in range(2)]
    for proc in procs:
        proc.start()
    claimed = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)
    assert not set(claimed[0]) & set(claimed[1])
    assert all(r.state == "done" for r in board.requests(limit=500))
