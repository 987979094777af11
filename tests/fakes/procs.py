"""Helpers to run child Python processes in tests (with timeouts)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this repository importable first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.update(extra)
    return env


def start_python(
    code: str, *args: str, cwd: str | os.PathLike[str] | None = None, **env: str
) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` with pipes for stdin/stdout/stderr."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=child_env(**env),
    )


def finish(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, reap it and close its pipes (a killed
    child whose pipes stay open is a ResourceWarning, an error here)."""
    if proc.poll() is None:
        proc.kill()
    with proc:  # closes stdin/stdout/stderr, then waits
        pass


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The next line the child prints on stdout; fails after ``timeout``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(f"child printed nothing within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"child ended without output; stderr:\n{err}")
    return line.strip()


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def run_python(
    args: Sequence[str], timeout: float = 60.0, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` to the end (with this repository importable)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        **kwargs,  # type: ignore[arg-type]
    )
