"""open_executor("dask-local:N") at a script's top level: the worker
processes import the script again; the error says to use the
``if __name__ == "__main__":`` guard (issue 18).  The guarded form, as
docs/parallel.rst shows it, runs in tests/test_docs.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent

UNGUARDED = """
from dojobber import DoJobber
from dojobber.cluster import open_executor
from tests.doc_jobs import Root

dojob = DoJobber()
with open_executor("dask-local:1") as executor:
    dojob.configure(Root, executor=executor)
    dojob.checknrun()
"""


@pytest.mark.slow
def test_dask_local_at_a_scripts_top_level_says_to_guard_it(tmp_path: Path) -> None:
    script = tmp_path / "top_level.py"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dojobber.cluster.ExecutorStartError: cannot open the executor "
                           "'dask-local:1'"), done.stderr[-2000:]
    assert """'if __name__ == "__main__":'""" in last
