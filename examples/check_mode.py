"""Check mode: see what would change before changing it.

A small web site in a directory: a config file, pages, and a "published"
marker.  The script does a dry run (nothing is written; each job that
would run says what its Run would do), then the real run, then the dry run
again, which finds nothing to change::

    python examples/check_mode.py --dir /tmp/check-mode-demo

The same from the command line, with any job file (exit 7: changes pending,
0: nothing would change, 1: a job could not be checked)::

    dojobber run examples/check_mode.py:Published -n
    dojobber run examples/check_mode.py:Published -n --json
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from dojobber import DoJobber, Job, RunOutcome
from dojobber.console import summary_text

SITE = Path(os.environ.get("CHECK_MODE_DEMO_DIR", tempfile.gettempdir())) / "check-mode-demo"
PAGES = {"index.html": "<h1>Hello</h1>\n", "about.html": "<p>About us</p>\n"}


class Config(Job):
    """site.ini holds the port."""

    def Check(self, port: str = "8080", **_: str) -> None:
        text = (SITE / "site.ini").read_text()  # FileNotFoundError: not written yet
        if f"port = {port}\n" not in text:
            raise ValueError(f"site.ini does not say port {port}")

    def Run(self, port: str = "8080", **_: str) -> None:
        SITE.mkdir(parents=True, exist_ok=True)
        (SITE / "site.ini").write_text(f"[web]\nport = {port}\n")

    def Plan(self, port: str = "8080", **_: str) -> str:
        return f"write {SITE / 'site.ini'} with port {port}"


class Pages(Job):
    """Every page is there with its content."""

    def _missing(self) -> list[str]:
        return [name for name, text in PAGES.items()
                if not (SITE / name).exists() or (SITE / name).read_text() != text]

    def Check(self, **_: str) -> None:
        missing = self._missing()
        if missing:
            raise FileNotFoundError(f"pages to write: {', '.join(missing)}")

    def Run(self, **_: str) -> None:
        SITE.mkdir(parents=True, exist_ok=True)
        for name in self._missing():
            (SITE / name).write_text(PAGES[name])

    def Plan(self, **_: str) -> str:
        missing = self._missing()
        return "\n".join([f"write {len(missing)} page(s):", *(str(SITE / n) for n in missing)])


class Published(Job):
    """The site is published (a marker file)."""

    DEPS = [Config, Pages]

    def Check(self, **_: str) -> None:
        if not (SITE / "PUBLISHED").exists():
            raise FileNotFoundError("not published yet")

    def Run(self, **_: str) -> None:
        (SITE / "PUBLISHED").touch()

    def Plan(self, **_: str) -> str:
        return f"publish the site in {SITE}"


def run(no_act: bool) -> RunOutcome:
    dojob = DoJobber()
    dojob.configure(Published, no_act=no_act)
    result = dojob.checknrun()
    print(summary_text(result), end="")
    return result.outcome


def main() -> int:
    global SITE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=SITE, help="where the site goes")
    SITE = parser.parse_args().dir
    print("== Dry run")
    first = run(no_act=True)
    print("== Real run")
    real = run(no_act=False)
    print("== Dry run again")
    again = run(no_act=True)
    ok = (first in (RunOutcome.CHANGES_PENDING, RunOutcome.CONVERGED)
          and real is RunOutcome.CONVERGED and again is RunOutcome.CONVERGED)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
