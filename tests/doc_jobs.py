"""Stand-in job graphs for the snippets of README.rst and docs/*.rst.

The docs say ``Root``, ``Deploy`` and ``Published`` without defining them
(the reader has their own); tests/test_docs.py fills them in from here.
Module-level classes, so process pools and dask workers can import them.
Every Check takes any arguments, as the snippets pass different ones.
"""

from __future__ import annotations

import logging
from typing import Any

from dojobber import DummyJob, Job

log = logging.getLogger("deploy")


class _Fact(Job):
    """Holds after its first Run in this process (a class-level flag)."""

    done = False

    def Check(self, *args: Any, **kwargs: Any) -> str:
        if not type(self).done:
            raise RuntimeError(f"{type(self).__name__} not done yet")
        return f"{type(self).__name__} done"

    def Run(self, *args: Any, **kwargs: Any) -> None:
        log.info("doing %s", type(self).__name__)
        type(self).done = True


class Build(_Fact):
    pass


class Upload(_Fact):
    DEPS = [Build]


class Deploy(DummyJob):
    """Deploy the web site."""

    DEPS = [Upload]


class Pages(_Fact):
    pass


class Published(DummyJob):
    DEPS = [Pages]


class Leaf(DummyJob):
    pass


class Root(DummyJob):
    DEPS = [Leaf]
