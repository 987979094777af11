"""Converging in one command: rounds with a backoff, a deadline, give-up.

A service that comes up slowly: ``Started`` passes only on its third look
(the state is kept in files, as a real service's would be), so a plain
run fails twice before it converges.  ``converge()`` does the rerunning::

    python examples/converge.py --dir /tmp/converge-demo
    python examples/converge.py --dir /tmp/converge-demo --password wrong   # gives up at once

The same from the command line, with any job file::

    dojobber run examples/converge.py:Ready --until-converged --backoff 1s..30s --within 5m
    dojobber run examples/converge.py:Ready --every 10m --splay 1m     # agent mode

and under systemd with ``examples/dojobber-agent.service``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from dojobber import Backoff, DoJobber, GiveUp, Job

STATE = Path(os.environ.get("CONVERGE_DEMO_DIR", tempfile.gettempdir())) / "converge-demo"


class WrongPasswordError(GiveUp, PermissionError):
    """The service refused the password: waiting will not change that."""


class Configured(Job):
    """The service's configuration file is written."""

    def Check(self, password: str = "secret", **_: str) -> None:
        if password != "secret":
            raise WrongPasswordError("the service refused the password; fix --password")
        if not (STATE / "service.conf").exists():
            raise FileNotFoundError("service.conf not written yet")

    def Run(self, **_: str) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / "service.conf").write_text("port = 8080\n")


class Started(Job):
    """The service answers (it takes three looks to come up)."""

    DEPS = [Configured]
    TRIES = 1

    def Check(self, **_: str) -> str:
        looks = STATE / "looks"
        n = int(looks.read_text()) if looks.exists() else 0
        if self._check_phase == "check":
            n += 1
            looks.write_text(str(n))
        if n < 3:
            raise ConnectionRefusedError(f"the service is still starting (look {n} of 3)")
        return "up"

    def Run(self, **_: str) -> None:
        pass  # (starting it is asynchronous: a later look sees it up)


class Ready(Job):
    """Everything is in place."""

    DEPS = [Started]

    def Check(self, **_: str) -> None:
        pass


def main() -> int:
    global STATE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(STATE))
    parser.add_argument("--password", default="secret")
    args = parser.parse_args()
    STATE = Path(args.dir)
    dj = DoJobber()
    dj.configure(Ready)
    dj.set_args(password=args.password)
    session = dj.converge(within=60, backoff=Backoff(0.1, 2, 2, 0.1))
    print(session.report())
    return {"converged": 0, "gave_up": 5}.get(session.verdict.value, 1)


if __name__ == "__main__":
    raise SystemExit(main())
