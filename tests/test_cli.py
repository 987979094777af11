"""The dojobber command line: in-process main(argv), python -m, a pty."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from dojobber import DoJobber, Job
from dojobber._main import main
from dojobber.console import PlainProgress, RichProgress, summary_table, summary_text
from dojobber.lock import RunLock
from tests.fakes.procs import child_env, run_python

JOBS = textwrap.dedent(
    '''
    import logging
    from dojobber import Job

    log = logging.getLogger("jobs")


    class Fetch(Job):
        def Check(self, **kw):
            if not self.global_storage.get("fetched"):
                raise ValueError("not fetched yet")

        def Run(self, **kw):
            log.info("fetching with %s", sorted(kw))
            self.global_storage["fetched"] = True


    def _failing(n):
        def check(self, fail="0", **kw):
            if n < int(fail):
                raise RuntimeError(f"Part{n} fails")
        return type(f"Part{n}", (Job,), {"DEPS": [Fetch], "TRIES": 1, "Check": check})


    Part0, Part1, Part2 = (_failing(n) for n in range(3))


    class Root(Job):
        """Everything."""
        DEPS = [Part0, Part1, Part2]

        def Check(self, **kw):
            pass


    class Loop1(Job):
        pass


    class Loop2(Job):
        DEPS = [Loop1]


    Loop1.DEPS = [Loop2]
    '''
)


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "jobs.py"
    path.write_text(JOBS)
    monkeypatch.setenv("DOJOBBER_RECORDS", str(tmp_path / "records.db"))
    monkeypatch.chdir(tmp_path)
    return path


def test_run_exit_codes_and_records(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{jobs}:Root", "--arg", "fail=2", "--arg", "api_key=k"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("Root: not converged (1 ok, 1 changed, 2 failed, 1 blocked)")
    assert "failed   Part0: RuntimeError: Part0 fails" in out
    assert "recorded as run 1 in" in err
    assert main(["run", f"{jobs}:Root", "-a", "fail=0"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("Root: converged")

    assert main(["show", "-2"]) == 0  # the run before the last
    out, _ = capsys.readouterr()
    assert "Run 1 of Root: not converged" in out
    assert "--arg api_key=*** " in out or "--arg api_key=***\n" in out
    assert "Part0" in out and "Part2" not in out  # only jobs that were not fine
    assert main(["show", "1", "Fetch"]) == 0
    out, _ = capsys.readouterr()
    assert "Fetch in run 1: changed" in out
    assert "run#1 INFO    jobs: fetching with ['api_key', 'fail']" in out
    assert main(["show", "1", "Part1"]) == 0
    out, _ = capsys.readouterr()
    assert "Traceback of the last failure" in out and "RuntimeError: Part1 fails" in out


def test_history_tells_whether_a_graph_converges(
    jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One trend per root and arguments; dry runs are shown as such and
    never counted as failures."""
    for _ in range(2):
        assert main(["run", f"{jobs}:Root", "-a", "fail=3"]) == 1
    capsys.readouterr()
    assert main(["history", "Root"]) == 0
    out, _ = capsys.readouterr()
    assert "Root fail=3: not converging (failed or blocked per run: 4 -> 4)" in out
    assert main(["run", f"{jobs}:Root", "-a", "fail=3", "-n"]) == 7  # changes pending
    assert main(["run", f"{jobs}:Root", "-a", "fail=1"]) == 1
    capsys.readouterr()
    assert main(["history", "--json"]) == 0
    data = json.loads(_last_json(capsys))
    assert data["trend"] == {
        "Root fail=1": "not converged yet (2 jobs failed or blocked)",
        "Root fail=3": "last run a dry run; not converging "
                       "(failed or blocked per run: 4 -> 4)",
    }
    assert [r["no_act"] for r in data["runs"]] == [False, True, False, False]
    main(["history"])
    out = capsys.readouterr().out
    assert re.search(r"^\s*3\s.*Root fail=3\s+changes pending\s", out, re.M), out
    main(["run", f"{jobs}:Root"])
    capsys.readouterr()
    main(["history"])
    assert "Root: converged" in capsys.readouterr().out


def test_history_is_readable_at_80_columns(
    jobs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["run", f"{jobs}:Root", "-a", "fail=1", "-a", "region=eu-central-with-a-long-name"])
    main(["run", f"{jobs}:Root"])
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if re.match(r"\s*\d+\s", line)]
    assert len(table) == 2
    for line in out.splitlines():
        assert len(line.rstrip()) <= 80, line
    for line in table:  # every column whole but the root and its arguments
        assert re.search(r"\d\d-\d\d \d\d:\d\d", line), line
        assert re.search(r"\s(converged|not converged)\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+"
                         r"\d+\.\d\ds$", line), line


def _last_json(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out
    return out[out.index("{"):]


def test_json_result(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{jobs}:Root", "--json", "-a", "fail=1", "--workers", "2"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "not_converged" and data["run_id"] == 1
    assert data["jobs"]["Part0"]["error"] == "RuntimeError: Part0 fails"
    assert data["jobs"]["Fetch"]["status"] == "changed"
    assert data["counts"] == {"ok": 2, "changed": 1, "failed": 1, "blocked": 1}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["run", "nosuchmodule_xyz:Root"], "no module named 'nosuchmodule_xyz'"),
        (["run", "{jobs}:Nope"], "has no 'Nope'; the job classes there: Fetch, Loop1, Loop2"),
        (["run", "{jobs}:log"], "is <Logger jobs (WARNING)>, not a subclass of dojobber.Job"),
        (["run", "{notpy}:Root"], "is not a Python file"),
        (["run", "{jobs}:Root", "--arg", "fail"], "--arg expects KEY=VALUE, got 'fail'"),
        (["run", "{jobs}:Loop1"], "dependency cycle: Loop1 -> Loop2 -> Loop1"),
        (["run", "{jobs}:Root", "--records", "{jobs}/sub/r.db"], "run records at"),
        (["run", "{jobs}:Root", "--workers", "0"], "Invalid value for '-w' / '--workers'"),
        (["show", "7"], "no run 7; `dojobber history` lists the runs kept"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    jobs: Path, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    notpy = jobs.parent / "notes.txt"
    notpy.write_text("These are my notes: buy milk.\n")
    if words[0] == "show":
        main(["run", f"{jobs}:Root"])
        capsys.readouterr()
    words = [w.format(jobs=jobs, notpy=notpy) for w in words]
    assert main(words) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    if words[0] == "run" and "--workers" not in words:
        assert len(err.strip().splitlines()) == 1, err


def test_target_without_a_job_name(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(jobs), "--no-records"]) == 0  # Root: the one job nothing needs
    assert capsys.readouterr().out.startswith("Root: converged")
    two = jobs.parent / "two.py"
    two.write_text(
        "from dojobber import DummyJob\nclass A(DummyJob): pass\nclass B(DummyJob): pass\n"
    )
    assert main(["run", str(two)]) == 2
    assert f"{two} has several root jobs (A, B); name one: {two}:A" in capsys.readouterr().err


def test_debug_shows_the_traceback(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{jobs}:Loop1", "-d"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("Error: dependency cycle")


@pytest.mark.slow
def test_python_m_dojobber_exit_codes(jobs: Path, tmp_path: Path) -> None:
    env = {"cwd": str(tmp_path)}
    ok = run_python(["-m", "dojobber", "run", f"{jobs}:Root", "--no-records"], **env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Root: converged")
    failed = run_python(["-m", "dojobber", "run", "jobs:Root", "-a", "fail=1", "--no-records"],
                        **env)
    assert failed.returncode == 1, failed.stderr
    assert "[2/5] Part0: failed (RuntimeError: Part0 fails)" in failed.stderr
    usage = run_python(["-m", "dojobber", "run", f"{jobs}:Root", "--bogus"], **env)
    assert usage.returncode == 2 and "No such option '--bogus'" in usage.stderr
    lock = tmp_path / "run.lock"
    with RunLock(lock, root="Root"):
        held = run_python(["-m", "dojobber", "run", f"{jobs}:Root", "--lock", str(lock),
                           "--no-records"], **env)
    assert held.returncode == 3
    assert f"pid {os.getpid()}" in held.stderr and "running Root since" in held.stderr
    assert run_python(["-m", "dojobber", "--version"]).stdout.startswith("dojobber, version")


@pytest.mark.slow
def test_main_of_a_job_class_makes_a_script_cli(tmp_path: Path) -> None:
    script = tmp_path / "converge.py"
    script.write_text(
        JOBS + textwrap.dedent(
            """
            if __name__ == "__main__":
                from dojobber._main import main
                raise SystemExit(main(Root))
            """
        )
    )
    env = {"cwd": str(tmp_path)}
    records = tmp_path / "r.db"
    done = run_python([str(script), "--records", str(records), "-a", "fail=1", "--json"], **env)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["failed"][0]["job"] == "Part0"
    usage = run_python([str(script), "--help"], **env)
    assert usage.returncode == 0 and "Usage: converge.py [OPTIONS]" in usage.stdout
    assert "Everything." in usage.stdout and "--workers" in usage.stdout
    noact = run_python([str(script), "-n", "--no-records"], **env)
    assert noact.returncode == 7  # Fetch's first check fails: changes pending; nothing is run
    assert "Fetch: would run (Check said: ValueError: not fetched yet)" in noact.stderr


class _Slow(Job):
    def Check(self) -> None:
        time.sleep(0.01)


class _Bad(Job):
    TRIES = 1

    def Check(self) -> None:
        raise OSError("disk full")


def test_rich_progress_on_a_recording_console() -> None:
    console = Console(record=True, file=io.StringIO(), force_terminal=True, width=100)
    progress = RichProgress(console, refresh_per_second=50)
    seen: list[str] = []

    class Look(Job):
        DEPS = [_Bad]

    class Peek(Job):
        DEPS = [_Slow]

        def Check(self) -> None:
            snap = Console(record=True, file=io.StringIO(), width=100)
            snap.print(progress.render())
            seen.append(snap.export_text())

    class Top(Job):
        DEPS = [Look, Peek]

    dj = DoJobber()
    dj.configure(Top, listeners=[progress])
    result = dj.checknrun()
    (during,) = seen
    assert "running: Peek" in during
    assert "failed so far: _Bad" in during
    assert "2/5 jobs" in during  # _Slow and _Bad finished, Peek running
    final = console.export_text()
    assert "5/5 jobs" in final and "1 failed, 2 blocked" in final

    table = Console(record=True, file=io.StringIO(), width=100)
    table.print(summary_table(result))
    text = table.export_text()
    assert "Top: not converged (2 ok, 1 failed, 2 blocked)" in text
    assert text.index("_Bad") < text.index("Look")  # failures first
    assert "OSError: disk full" in text
    assert summary_text(result).splitlines()[1] == "  failed   _Bad: OSError: disk full"


def test_plain_progress_lines() -> None:
    stream = io.StringIO()

    class Top(Job):
        DEPS = [_Bad, _Slow]

    dj = DoJobber()
    dj.configure(Top, listeners=[PlainProgress(stream)])
    dj.checknrun()
    assert stream.getvalue().splitlines() == [
        "[1/3] _Bad: failed (OSError: disk full)",
        "[3/3] Top: blocked",
    ]


def test_real_terminal_output_under_a_pty(jobs: Path, tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes `python -m dojobber run ...` on the pty
        os.chdir(tmp_path)
        env = child_env(TERM="xterm-256color", COLUMNS="100", LINES="40")
        env.pop("NO_COLOR", None)
        os.execve(sys.executable, [sys.executable, "-m", "dojobber", "run", f"{jobs}:Root",
                                   "-a", "fail=1", "--records", str(tmp_path / "r.db")], env)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the CLI did not finish under the pty within 60s")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in raw  # styled for a terminal
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert "┃ Job   ┃ Status  ┃ Tries ┃" in text  # the summary table, with box drawing
    assert "Root: not converged (2 ok, 1 changed, 1 failed, 1 blocked)" in text
    assert "│ Part0 │ failed  │     1 │" in text
    assert "RuntimeError: Part0 fails" in text
    assert "5/5 jobs" in text  # the live progress display, final state
    assert "failed so far: Part0" in text


def test_graph_of_a_target_and_of_a_recorded_run(
    jobs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dojobber.render import render

    picture = tmp_path / "run.svg"
    assert main(["run", f"{jobs}:Root", "-a", "fail=1", "--graph", str(picture)]) == 1
    assert picture.read_text().lstrip().startswith(("<?xml", "<svg"))  # drawn by real dot
    assert "Part0" in picture.read_text()
    capsys.readouterr()

    # The recorded run draws the same DOT as the live result did.
    live = DoJobber()
    live_jobs = _load(jobs)
    live.configure(live_jobs.Root)
    live.set_args(fail="1")
    expected = render(live.jobs, live.checknrun(), "dot").decode()
    out = tmp_path / "stored.dot"
    assert main(["graph", "--run", "last", "-o", str(out)]) == 0
    assert out.read_text() == expected
    assert "RuntimeError: Part0 fails" in expected

    assert main(["graph", f"{jobs}:Root", "-o", "-", "--format", "mermaid"]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart") and "Part2" in mermaid
    assert main(["graph", f"{jobs}:Root", "-o", str(tmp_path / "noext")]) == 2
    assert "cannot tell the picture format" in capsys.readouterr().err
    assert main(["graph", "-o", str(tmp_path / "x.png")]) == 2
    assert "give either FILE_OR_MODULE[:Job] or --run RUN" in capsys.readouterr().err


def test_graph_caps_big_graphs_unless_max_nodes_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dojobber.render import DEFAULT_MAX_NODES

    script = tmp_path / "big.py"
    script.write_text(
        "from dojobber import DummyJob, Job\n"
        "class Leaf(Job):\n"
        "    def Check(self):\n"
        "        pass\n"
        f"LEAVES = [Leaf.variant(f'Leaf{{i}}') for i in range({DEFAULT_MAX_NODES + 20})]\n"
        "class Root(DummyJob):\n"
        "    DEPS = LEAVES\n"
    )
    jobs = DEFAULT_MAX_NODES + 21

    def drawn(*options: str) -> str:
        assert main(["graph", f"{script}:Root", "-o", "-", "-f", "mermaid", *options]) == 0
        return capsys.readouterr().out

    def count(mermaid: str) -> int:  # job nodes: "    j12[..." or "    j3([..."
        return len(re.findall(r"^    j\d+\[", mermaid.replace("([", "["), re.M))

    default = drawn()
    assert count(default) == DEFAULT_MAX_NODES
    assert f"showing {DEFAULT_MAX_NODES} of {jobs} jobs" in default
    every = drawn("--max-nodes", "all")
    assert count(every) == jobs and "showing" not in every
    assert "showing 5 of" in drawn("--max-nodes", "5")
    for bad in ("0", "-3", "many"):
        assert main(["graph", f"{script}:Root", "-o", "-", "--max-nodes", bad]) == 2
        assert "give a whole number of jobs >= 1, or 'all'" in capsys.readouterr().err


def _load(path: Path) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("jobs_again", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_exits_130_and_records_an_interrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "stop.py"
    script.write_text(
        "from dojobber import Job\n"
        "class Stop(Job):\n"
        "    def Check(self):\n"
        "        raise KeyboardInterrupt\n"
    )
    monkeypatch.setenv("DOJOBBER_RECORDS", str(tmp_path / "r.db"))
    assert main(["run", f"{script}:Stop"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert main(["history", "--json"]) == 0
    assert json.loads(_last_json(capsys))["runs"][0]["outcome"] == "interrupted"
