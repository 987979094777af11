"""dask.distributed as the executor: same results, worker death survived."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from dojobber import DoJobber, DummyJob, Job, JobStatus
from dojobber.cluster import open_executor
from tests.fakes.procs import wait_until
from tests.helpers import converge
from tests.strategies import TRIES, Script, scripts, storage_script

from . import parallel_jobs

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

#: A dask cluster takes seconds to start, and every test here uses one.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[Any]:
    # allowed-failures 0: dask reports a dead worker at once instead of
    # rescheduling silently, so dojobber's own recovery is what is tested
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address="127.0.0.1:0",
                                     host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        yield client.get_executor()


def outcome(root: type[Job], **options: Any) -> tuple[Any, ...]:
    dojob = converge(root, tries=TRIES, **options)
    result = dojob.result
    assert result is not None
    return (
        dojob.nodestatus,
        dojob.noderesults,
        {k: type(v).__name__ for k, v in dojob.nodeexceptions.items()},
        {j.name: j.tries for j in result},
    )


@settings(max_examples=15, deadline=None)
@given(script=scripts())
def test_sequential_threads_and_dask_agree(dask_executor: Any, script: Script) -> None:
    root = storage_script(script)
    sequential = outcome(root)
    assert outcome(root, workers=8) == sequential
    assert outcome(root, executor=dask_executor) == sequential


def test_worker_killed_mid_attempt_is_survived(dask_executor: Any, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    killer = parallel_jobs.KillsItsWorker.variant("Killer", MARKER=str(marker))
    root = type("Root", (DummyJob,), {"DEPS": [killer, parallel_jobs.Gather]})
    dojob = DoJobber()
    dojob.configure(root, executor=dask_executor)
    result = dojob.checknrun()
    assert dojob.success(), result.report()
    assert marker.exists()
    job = result["Killer"]
    assert job.lost_attempts == 1 and job.tries == 1 and job.status is JobStatus.OK
    assert job.result != int(marker.read_text())  # ran again, in another process
    assert "worker lost" in result.report()


def test_cleanup_runs_in_the_engine_process(dask_executor: Any) -> None:
    parallel_jobs.CLEANED.clear()
    dojob = DoJobber()
    dojob.configure(parallel_jobs.WithCleanup, executor=dask_executor)
    dojob.checknrun()
    assert [os.getpid()] == parallel_jobs.CLEANED


def test_jobs_made_in_main_with_type_and_variant_run_on_dask(tmp_path: Path) -> None:
    script = tmp_path / "main_jobs.py"
    script.write_text(textwrap.dedent("""
        import os
        from dojobber import DoJobber, DummyJob, Job
        from dojobber.cluster import open_executor

        class Hello(Job):
            WHO = "nobody"
            def Check(self):
                return f"hello {self.WHO} from {os.getpid()}"

        Made = type("Made with type", (Job,), {"Check": lambda self: "typed"})

        class Root(DummyJob):
            DEPS = [Hello.variant("Hello ann", WHO="ann"), Made]

        if __name__ == "__main__":
            with open_executor("dask-local:1") as executor:
                dojob = DoJobber()
                dojob.configure(Root, executor=executor)
                dojob.checknrun()
            print(dojob.success(), dojob.noderesults["Made with type"],
                  dojob.noderesults["Hello ann"].split(" from ")[0],
                  dojob.noderesults["Hello ann"].endswith(str(os.getpid())))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "typed", "hello", "ann", "False"]


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_existing_scheduler_by_address(tmp_path: Path) -> None:
    port = free_port()
    dask_cli = str(Path(sys.executable).with_name("dask"))
    # the scheduler and workers (on other machines, in real use) need the
    # jobs' module importable, as for any dask task: the repository here
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    scheduler = subprocess.Popen(
        [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=tmp_path, env=env)
    worker = subprocess.Popen(
        [dask_cli, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "1",
         "--no-dashboard", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, env=env)
    try:
        wait_until(lambda: _listens(port), 60, "the dask scheduler to listen")
        with open_executor(f"dask://127.0.0.1:{port}") as executor:
            dojob = DoJobber()
            dojob.configure(parallel_jobs.Gather, executor=executor)
            result = dojob.checknrun()
        assert dojob.noderesults.get("Gather") == ["a", "b"], result.report()
        assert dojob.noderesults["Write a"] != os.getpid()
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
