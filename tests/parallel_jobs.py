"""Module-level jobs for tests that run attempts in other processes."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from dojobber import DummyJob, GiveUp, Job

CLEANED: list[int] = []


class Write(Job):
    """Sets global_storage[KEY] after one Run; the result is the pid."""

    KEY = "a"

    def Check(self) -> int:
        if self.global_storage.get(self.KEY) != "set":  # type: ignore[union-attr]
            raise LookupError(f"{self.KEY} not set")
        return os.getpid()

    def Run(self) -> None:
        self.global_storage[self.KEY] = "set"  # type: ignore[index]


class Gather(DummyJob):
    DEPS = [Write.variant("Write a", KEY="a"), Write.variant("Write b", KEY="b")]

    def Check(self) -> list[Any]:
        return sorted(k for k in self.global_storage if k in "ab")  # type: ignore[union-attr]


class UnpicklableError(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}+{b}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnpicklableError, ())  # loading it fails: __init__ needs a, b


class RaisesOdd(Job):
    TRIES = 1

    def Check(self) -> None:
        raise UnpicklableError(1, 2)


class WithCleanup(Job):
    def Check(self) -> str:
        self.pid = os.getpid()
        return "ok"

    def Cleanup(self) -> None:
        CLEANED.append(os.getpid())


class KillsItsWorker(Job):
    """Kills the process it runs in on the first attempt (marker absent)."""

    MARKER = ""

    def Check(self) -> int:
        marker = Path(self.MARKER)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(3)
        return os.getpid()


class OddFirstCheck(Job):
    """Its first Check raises an exception that does not unpickle; it passes
    after Run."""

    def Check(self) -> str:
        if not self.storage:  # type: ignore[union-attr]
            raise UnpicklableError(3, 4)
        return "fixed"

    def Run(self) -> None:
        self.storage["ran"] = True  # type: ignore[index]


class ManyWrites(DummyJob):
    """120 independent Write jobs (more than a batch's worth per worker)."""

    DEPS = [Write.variant(f"Write k{i}", KEY=f"k{i}") for i in range(120)]

    def Check(self) -> int:
        return sum(1 for k in self.global_storage if k.startswith("k"))  # type: ignore[union-attr]


class NotPicklableGiveUpError(GiveUp):
    """Gives up, and holds something that does not pickle."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.handle = threading.Lock()


class GivesUp(Job):
    """Counts its attempts in ``tmp``/tries and gives up each time."""

    TRIES = 5
    RETRY_DELAY = 0

    def Check(self, tmp: str, **_: Any) -> None:
        tries = Path(tmp) / "tries"
        if self._check_phase == "check":
            tries.write_text(str(int(tries.read_text()) + 1 if tries.exists() else 1))
        raise NotPicklableGiveUpError("the server refused the password")


class Stuck(Job):
    """Its Run sleeps far past its TIMEOUT (stopped only in another process)."""

    TIMEOUT = 1.0
    TRIES = 3

    def Check(self, tmp: str, **_: Any) -> None:
        raise RuntimeError("not done")

    def Run(self, tmp: str, **_: Any) -> None:
        (Path(tmp) / f"stuck-{os.getpid()}").write_text("started")
        import time

        time.sleep(600)


class Quick(Job):
    """Passes after writing a file (while Stuck is stuck)."""

    TIMEOUT = 60.0

    def Check(self, tmp: str, **_: Any) -> str:
        if not (Path(tmp) / "quick").exists():
            raise RuntimeError("not yet")
        return "quick"

    def Run(self, tmp: str, **_: Any) -> None:
        (Path(tmp) / "quick").write_text("x")


class StuckAndQuick(DummyJob):
    DEPS = [Stuck, Quick]
