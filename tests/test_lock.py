"""The single-run lock: holder named, waiting, released when the holder dies."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from dojobber import DoJobber, Job
from dojobber.errors import ConfigurationError, RunError
from dojobber.lock import LockHeldError, RunLock
from tests.fakes.procs import finish, read_line, start_python

_HOLDER = textwrap.dedent(
    """
    import sys
    from dojobber.lock import RunLock
    lock = RunLock(sys.argv[1], root="HeldRoot").acquire()
    print("held", flush=True)
    sys.stdin.readline()          # hold until told (or killed)
    lock.release()
    print("released", flush=True)
    """
)


class Quick(Job):
    def Check(self) -> None:
        pass


def test_second_holder_is_refused_with_the_holders_name(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    child = start_python(_HOLDER, str(path))
    try:
        assert read_line(child) == "held"
        with pytest.raises(LockHeldError) as info:
            RunLock(path).acquire()
        message = str(info.value)
        assert f"pid {child.pid} on {socket.gethostname()}" in message
        assert "running HeldRoot since" in message
        assert str(path) in message
        assert isinstance(info.value, RunError)
        assert info.value.holder["pid"] == child.pid
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert read_line(child) == "released"
        with RunLock(path) as lock:
            assert lock.held
            assert lock.holder()["pid"] == os.getpid()
        assert not lock.held
    finally:
        finish(child)


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    child = start_python(_HOLDER, str(path))
    try:
        assert read_line(child) == "held"
        with pytest.raises(LockHeldError):
            RunLock(path).acquire()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        finish(child)
    lock = RunLock(path, root="Next").acquire()
    assert lock.holder()["root"] == "Next"
    lock.release()


def test_waits_up_to_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    first = RunLock(path).acquire()
    with pytest.raises(LockHeldError, match=r"after waiting 0\.3s"):
        RunLock(path, timeout=0.3, poll=0.05).acquire()
    timer = threading.Timer(0.2, first.release)
    timer.start()
    try:
        second = RunLock(path, timeout=20, poll=0.02).acquire()
        assert second.held
        second.release()
    finally:
        timer.cancel()


def test_configure_lock_guards_checknrun(tmp_path: Path) -> None:
    path = tmp_path / "graph.lock"
    seen: list[dict[str, object]] = []

    class Peek(Job):
        def Check(self) -> None:
            seen.append(RunLock(path).holder())

    dj = DoJobber()
    dj.configure(Peek, lock=path)
    assert dj.checknrun().success()
    assert seen[0]["root"] == "Peek" and seen[0]["pid"] == os.getpid()
    assert path.read_text() == ""  # emptied when the run let go

    other = RunLock(path, root="Other").acquire()
    try:
        with pytest.raises(LockHeldError, match="running Other since"):
            dj.checknrun()
        waiting = DoJobber()
        waiting.configure(Quick, lock=path, lock_timeout=20)
        threading.Timer(0.2, other.release).start()
        assert other.held
        assert waiting.checknrun().success()  # it waited for the release
    finally:
        other.release()


def test_bad_lock_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        DoJobber().configure(Quick, lock=tmp_path / "l", lock_timeout=-1)
