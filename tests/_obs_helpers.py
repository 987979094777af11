"""Helpers shared by test_obs.py and test_download.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from dojobber import DoJobber, Job
from tests.fakes.obs import FakeObs

PROJECT = "devel:kanku:images"
PACKAGE = "leap"
IMAGE = "openSUSE-Leap-15.6.x86_64-1.2.3-Build4.5.qcow2"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def obs() -> Iterator[FakeObs]:
    with FakeObs() as fake:
        yield fake


def run(root: type[Job], tries: int = 1, **kwargs: Any) -> DoJobber:
    """One checknrun of ``root`` with no retry delay."""
    dj = DoJobber()
    dj.configure(root, default_tries=tries, default_retry_delay=0, **kwargs)
    dj.checknrun()
    return dj


def capture(name: str, *deps: type[Job]) -> tuple[type[Job], dict[str, Any]]:
    """A job that depends on ``deps`` and copies ``global_storage["kanku"]``."""
    seen: dict[str, Any] = {}

    class Capture(Job):
        DEPS = list(deps)

        def Check(self) -> None:
            assert self.global_storage is not None
            seen.clear()
            seen.update(self.global_storage.get("kanku", {}))

    Capture.__name__ = Capture.__qualname__ = name
    return Capture, seen
