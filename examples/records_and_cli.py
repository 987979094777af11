"""A script with its own command line, run records and per-job logs.

Run it a few times; it converges on the second run (``Publish`` needs a
file that the first run's ``Render`` only makes at the end)::

    python examples/records_and_cli.py --records /tmp/demo.sqlite3 --arg workdir=/tmp/demo
    python examples/records_and_cli.py --records /tmp/demo.sqlite3 --arg workdir=/tmp/demo
    dojobber history --records /tmp/demo.sqlite3
    dojobber show last Publish --records /tmp/demo.sqlite3
    dojobber graph --run -2 -o /tmp/demo-first-run.svg --records /tmp/demo.sqlite3

Every option of ``dojobber run`` works here (``--help``, ``-v``,
``--workers``, ``--json``, ``--lock``, ``--notify URL`` ...).  The exit
status is 0 once everything converged, 1 before.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dojobber import Job

try:
    from dojobber import main
except ImportError:  # a dojobber that does not export it (yet)
    from dojobber._main import main

log = logging.getLogger("demo")


def _dir(workdir: str) -> Path:
    return Path(os.path.expanduser(workdir))


class WorkDir(Job):
    """The working directory exists."""

    def Check(self, workdir: str = "./records-demo", **_: str) -> None:
        if not _dir(workdir).is_dir():
            raise FileNotFoundError(f"{workdir} does not exist")

    def Run(self, workdir: str = "./records-demo", **_: str) -> None:
        log.info("creating %s", workdir)
        _dir(workdir).mkdir(parents=True)


class Page(Job):
    """index.html is written."""

    DEPS = [WorkDir]

    def Check(self, workdir: str = "./records-demo", **_: str) -> int:
        page = _dir(workdir) / "index.html"
        if not page.exists():
            raise FileNotFoundError("index.html not written yet")
        return page.stat().st_size

    def Run(self, workdir: str = "./records-demo", **_: str) -> None:
        log.info("writing index.html")
        (_dir(workdir) / "index.html").write_text("<h1>Hello</h1>\n")


class Render(Job):
    """The rendered marker exists (made by Cleanup: the next run sees it)."""

    DEPS = [Page]

    def Check(self, workdir: str = "./records-demo", **_: str) -> None:
        log.debug("looking for the marker")  # below INFO: not recorded by default

    def Cleanup(self) -> None:
        workdir = self.global_storage.get("workdir") if self.global_storage else None
        if workdir:
            (_dir(workdir) / "rendered").touch()


class Publish(Job):
    """Published: needs the marker, so the first run fails here."""

    DEPS = [Render]
    TRIES = 2
    RETRY_DELAY = 0.1

    def Check(self, workdir: str = "./records-demo", **_: str) -> str:
        self.global_storage["workdir"] = workdir
        if not (_dir(workdir) / "rendered").exists():
            log.warning("not rendered yet; rerun me")
            raise RuntimeError("nothing rendered to publish yet")
        return "published"


if __name__ == "__main__":
    raise SystemExit(main(Publish))
