"""Ctrl-C (a real SIGINT to a real ``dojobber run``) on a process-pool and a
dask LocalCluster executor: the run stops cleanly (exit 130, recorded as
interrupted, cleanups of what finished) and leaves no worker process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dojobber.records import RecordStore
from tests.fakes.procs import child_env, wait_until

SCRIPT = textwrap.dedent(
    '''
    import os, time
    from dojobber import Job

    HERE = os.environ["FAULT_DIR"]

    def mark(name):
        with open(os.path.join(HERE, name), "a") as f:
            f.write(f"{os.getpid()}\\n")


    class Done(Job):
        def Check(self, **kw):
            pass

        def Cleanup(self):
            mark("done.cleaned")


    class Sleeper(Job):
        DEPS = [Done]  # (so Done has come back, and is cleaned up, when it runs)

        def Check(self, **kw):
            if not os.path.exists(os.path.join(HERE, "slept")):
                raise RuntimeError("not slept yet")

        def Run(self, **kw):
            mark("sleeper.running")
            try:
                time.sleep(float(os.environ.get("SLOW_SECONDS", "60")))
            except KeyboardInterrupt:
                mark("sleeper.interrupted")
                if os.environ.get("STUBBORN"):  # goes on regardless
                    time.sleep(float(os.environ.get("SLOW_SECONDS", "60")))
                raise
            mark("slept")

        def Cleanup(self):
            mark("sleeper.cleaned")


    class Root(Job):
        DEPS = [Sleeper]

        def Check(self, **kw):
            pass
    '''
)

EXECUTORS = ["processes:2", pytest.param("dask-local:2", marks=pytest.mark.slow)]


def _group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` still runs (a
    zombie does not count: it has ended)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            return True
    return False


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_ctrl_c_on_an_executor_stops_cleanly(tmp_path: Path, executor: str,
                                              presses: int) -> None:
    """A process pool's worker runs the job's code in its main thread: Ctrl-C
    reaches it there as it would in the run's own process (and a worker
    waiting for work ignores it); when the job's code goes on regardless,
    the run waits and says so, and a second Ctrl-C abandons the attempt and
    ends the pool's workers.  dask cancels the running task at once (its
    workers ignore SIGINT; closing the cluster ends them)."""
    dask = executor.startswith("dask")
    if dask:
        pytest.importorskip("distributed")
    (tmp_path / "xjobs.py").write_text(SCRIPT)
    records = tmp_path / "records.db"
    slow = "600"
    child = subprocess.Popen(
        [sys.executable, "-m", "dojobber", "run", "xjobs.py:Root", "--executor", executor,
         "--records", str(records), "--no-progress"],
        cwd=tmp_path, text=True, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env=child_env(FAULT_DIR=str(tmp_path), SLOW_SECONDS=slow,
                                              **({"STUBBORN": "1"} if presses == 2 else {})))
    pgid = child.pid  # (its own session: the group a terminal's Ctrl-C goes to)
    assert child.stderr is not None
    try:
        wait_until((tmp_path / "sleeper.running").exists, 120, what="Sleeper to run")
        worker = int((tmp_path / "sleeper.running").read_text().split()[0])
        assert worker != child.pid  # (it runs in a worker process)
        # A terminal sends Ctrl-C to the whole foreground group: the run and
        # its workers alike.
        os.killpg(pgid, signal.SIGINT)
        if not dask:  # the job's code in the worker heard it
            wait_until((tmp_path / "sleeper.interrupted").exists, 30, "the job to hear Ctrl-C")
        if presses == 2:  # the job goes on regardless: the second press abandons it
            time.sleep(1.0)
            os.killpg(pgid, signal.SIGINT)
        code = child.wait(timeout=90)
        said = child.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if child.poll() is None:
            child.wait(timeout=30)
        child.stderr.close()
    assert code == 130, said
    assert "Traceback" not in said, said
    # no worker process left behind (the group empties once the run ended)
    wait_until(lambda: not _group_alive(pgid), 30, "the worker processes to end")
    assert (tmp_path / "done.cleaned").exists()
    assert not (tmp_path / "slept").exists()
    if presses == 2 and not dask:  # abandoned: no Cleanup while its attempt might run
        assert "press Ctrl-C again to abandon" in said, said
        assert not (tmp_path / "sleeper.cleaned").exists()
    if dask:  # cancelled: its instance never came back, so no Cleanup either
        assert not (tmp_path / "sleeper.cleaned").exists()
    with RecordStore(records) as store:
        run = store.run("last")
        assert run.outcome == "interrupted"
        jobs = {j.name: j.status for j in store.jobs(run.id)}
    assert jobs.get("Done") == "ok"
