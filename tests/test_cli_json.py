"""``dojobber run --json``: stdout is the JSON document and nothing else,
even when jobs print (from Python, from another thread, from a program they
start); what they print goes to stderr, with the "recorded as run N" line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.fakes.procs import run_python

NOISY = textwrap.dedent(
    """
    import subprocess, sys, threading
    from dojobber import Job

    class Noisy(Job):
        def Check(self):
            print("hello from Check")
            if not getattr(type(self), "ran", False):
                raise RuntimeError("not yet")

        def Run(self):
            helper = threading.Thread(target=print, args=("hello from a thread",))
            helper.start()
            helper.join()
            subprocess.run([sys.executable, "-c", "print('hello from a program')"])
            type(self).ran = True
    """
)


def test_json_stdout_is_only_the_document(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY)
    records = tmp_path / "runs.sqlite3"
    done = run_python(["-m", "dojobber", "run", "noisy.py:Noisy", "--json",
                       "--records", str(records)], cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # the whole of stdout parses
    assert data["jobs"]["Noisy"]["status"] == "changed"
    for said in ("hello from Check", "hello from a thread", "hello from a program"):
        assert said in done.stderr and said not in done.stdout
    assert f"recorded as run 1 in {records}" in done.stderr
