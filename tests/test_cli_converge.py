"""``dojobber run --until-converged`` and agent mode (``--every``), in real
child processes with real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dojobber._main import main
from dojobber.records import RecordStore
from tests.fakes.procs import child_env, finish, wait_until

# Each job passes from its k-th attempt on (k in NEEDS), counting attempts
# in files next to the jobs: run on its own, the script converges on the
# 4th run of the process; --until-converged does it in one command.
JOBS = textwrap.dedent(
    '''
    import os
    from pathlib import Path
    from dojobber import GiveUp, Job

    HERE = Path(__file__).parent
    NEEDS = {"Fetch": 2, "Build": 3, "Publish": 3}


    def attempts(name, first):
        path = HERE / f"{name}.count"
        n = int(path.read_text()) if path.exists() else 0
        if first:
            n += 1
            path.write_text(str(n))
        return n


    def counted(name, deps=()):
        def check(self):
            n = attempts(name, self._check_phase == "check")
            if n < NEEDS[name]:
                raise RuntimeError(f"{name}: not yet ({n} of {NEEDS[name]})")
        return type(name, (Job,), {"DEPS": list(deps), "TRIES": 1, "Check": check,
                                   "Run": lambda self: None})


    Fetch = counted("Fetch")
    Build = counted("Build", [Fetch])
    Publish = counted("Publish")


    class Root(Job):
        DEPS = [Build, Publish]

        def Check(self):
            return "done"


    class BadPassword(GiveUp, PermissionError):
        pass


    class Login(Job):
        def Check(self):
            raise BadPassword("the server refused user ann")


    class Never(Job):
        TRIES = 1

        def Check(self):
            raise RuntimeError("still building")

        def Run(self):
            pass
    '''
)


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "jobs.py"
    path.write_text(JOBS)
    monkeypatch.setenv("DOJOBBER_RECORDS", str(tmp_path / "records.db"))
    monkeypatch.setenv("DOJOBBER_AGENT_LOCK", str(tmp_path / "agent.lock"))
    monkeypatch.chdir(tmp_path)
    return path


def dojobber(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dojobber", *args], capture_output=True, text=True,
        timeout=120, cwd=cwd, env=child_env(),
    )


def test_one_command_converges_what_took_four_runs(jobs: Path, tmp_path: Path) -> None:
    done = dojobber("run", f"{jobs}:Root", "--until-converged", "--backoff", "0.01s..0.05s",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "converged after 4 rounds" in done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["Round", "Run", "Outcome", "OK", "Changed", "Failed",
                                "Blocked", "Time", "Then", "waited"]
    assert [line.split()[2] for line in lines[2:6]] == ["failed"] * 3 + ["converged"]
    assert "round 1/10: 2 failed, 2 blocked; still failing: Fetch, Publish" in done.stderr
    assert "next: round 2/10 in" in done.stderr
    assert (tmp_path / "Build.count").read_text() == "3"  # tried from round 2 on
    with RecordStore(tmp_path / "records.db") as store:
        runs = store.runs()
    assert [r.round for r in runs] == [4, 3, 2, 1] and len({r.session for r in runs}) == 1
    # the summary names each round's run in the records
    assert [line.split()[1] for line in lines[2:6]] == [str(r.id) for r in reversed(runs)]


def test_limits_ran_out_exits_1_and_json_lists_rounds(
    jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", f"{jobs}:Root", "--max-rounds", "2", "--backoff", "0.01s", "--json"])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    session = data["converge"]
    assert session["verdict"] == "exhausted" and "max_rounds=2" in session["reason"]
    assert [r["round"] for r in session["rounds"]] == [1, 2]
    assert session["rounds"][0]["then_waited"] == 0.01
    assert session["rounds"][1]["counts"]["failed"] == 2


def test_a_job_that_gives_up_stops_at_once_with_its_own_exit_status(
    jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", f"{jobs}:Login", "--until-converged", "--backoff", "1h"])
    assert code == 5
    out = capsys.readouterr().out
    assert "gave up after 1 round" in out
    assert "Login (BadPassword: the server refused user ann)" in out


def test_deadline_ends_the_session_instead_of_a_long_wait(
    jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", f"{jobs}:Never", "--within", "5m", "--backoff", "1h..2h"])
    assert code == 1
    assert "the deadline (300s) comes before the next round" in capsys.readouterr().out


def test_bad_durations_are_usage_errors(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{jobs}:Root", "--within", "soon"]) == 2
    assert "--within" in capsys.readouterr().err
    assert main(["run", f"{jobs}:Root", "--backoff", "5m..5s"]) == 2
    assert "MAX is below INITIAL" in capsys.readouterr().err


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dojobber", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=cwd, env=child_env(),
    )


class Collect:
    """Reads a child's stderr on a thread, so the test can wait for lines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")))
        self.thread.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


def test_ctrl_c_during_the_wait_between_rounds(jobs: Path, tmp_path: Path) -> None:
    proc = _start(["run", f"{jobs}:Never", "--until-converged", "--backoff", "1h"], tmp_path)
    err = Collect(proc)
    try:
        wait_until(lambda: err.has("next: round 2/10 in 3600.0s"), 60, "the wait")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.stdout is not None
        out = proc.stdout.read()
    finally:
        proc.kill()
    err.thread.join()
    finish(proc)  # closes its pipes
    assert proc.returncode == 130
    assert err.has("interrupted")
    assert "interrupted after 1 round" in out


def test_agent_mode_with_real_signals(jobs: Path, tmp_path: Path) -> None:
    (tmp_path / "flag.py").write_text(textwrap.dedent(
        '''
        from pathlib import Path
        from dojobber import Job


        class Flag(Job):
            TRIES = 1

            def Check(self):
                raise RuntimeError("version one")

            def Run(self):
                pass
        '''
    ))
    proc = _start(["run", f"{tmp_path / 'flag.py'}:Flag", "--every", "0.2s", "--tries", "1"],
                  tmp_path)
    err = Collect(proc)
    try:
        wait_until(lambda: err.count("agent: round") >= 2, 60, "two agent rounds")
        # SIGHUP: the job file is read again before the next round.
        (tmp_path / "flag.py").write_text(
            "from dojobber import Job\n\nclass Flag(Job):\n    def Check(self):\n"
            "        return 'version two'\n"
        )
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: err.has("job file reloaded"), 60, "the reload")
        wait_until(lambda: err.has("Flag: converged"), 60, "a round of the new job file")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    err.thread.join()
    finish(proc)  # closes its pipes
    assert proc.returncode == 0, "".join(err.lines)
    assert err.has("agent: stopped (SIGTERM)")
    rounds = err.count("agent: round")
    with RecordStore(tmp_path / "records.db") as store:
        runs = store.runs(limit=100)
    assert len(runs) == rounds  # one history line per round
    assert all(r.session is None for r in runs)
    assert runs[-1].outcome == "not_converged" and runs[0].outcome == "converged"


def test_sigterm_lets_the_running_round_finish(jobs: Path, tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(textwrap.dedent(
        '''
        import time
        from pathlib import Path
        from dojobber import Job


        class Slow(Job):
            def Check(self):
                if not Path("go").exists():
                    raise RuntimeError("not yet")
                Path("checked").write_text("x")

            def Run(self):
                Path("running").write_text("x")
                while not Path("release").exists():
                    time.sleep(0.01)
                Path("go").write_text("x")
        '''
    ))
    proc = _start(["run", f"{tmp_path / 'slow.py'}:Slow", "--every", "1h"], tmp_path)
    err = Collect(proc)
    try:
        wait_until(lambda: (tmp_path / "running").exists(), 60, "the Run to start")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # (the signal is in: the round must still finish)
        (tmp_path / "release").write_text("x")
        proc.wait(timeout=60)
    finally:
        proc.kill()
    err.thread.join()
    finish(proc)  # closes its pipes
    assert proc.returncode == 0
    assert (tmp_path / "checked").exists()  # the round ran to its recheck
    assert err.count("agent: round") == 1 and err.has("Slow: converged")
    assert os.path.exists(tmp_path / "agent.lock")


def test_a_script_gets_the_same_options(jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dojobber.loader import load_root

    root = load_root(f"{jobs}:Root")
    assert main(root, ["--until-converged", "--backoff", "0.01s", "--no-records"]) == 0
    out = capsys.readouterr().out
    assert "converged after 4 rounds" in out


def test_the_live_display_counts_down_and_names_what_fails(jobs: Path) -> None:
    import io

    from rich.console import Console

    from dojobber import DoJobber
    from dojobber.cli._rounds import RoundsDisplay
    from dojobber.loader import load_root

    lines = io.StringIO()
    console = Console(file=io.StringIO(), record=True, width=100, force_terminal=True)
    display = RoundsDisplay(lines, console)
    shown: list[str] = []

    class Look(RoundsDisplay):
        def round_waiting(self, round: object, seconds: float) -> None:
            # (after the display's own round_waiting: listeners are told in order)
            with console.capture() as capture:
                console.print(display.render())
            shown.append(re.sub(r"\x1b\[[0-9;]*m", "", capture.get()))

    dj = DoJobber()
    dj.configure(load_root(f"{jobs}:Root"), listeners=[display, Look(lines)])
    session = dj.converge(max_rounds=2, backoff=0.01)
    assert session.verdict.value == "exhausted"
    assert "round 2/2 in 0s" in shown[0] and "still failing: Fetch, Publish" in shown[0]
    assert "round 1/2: 2 failed, 2 blocked; still failing: Fetch, Publish" in lines.getvalue()


SCRIPT_AGENT = '''
import os
from pathlib import Path
from dojobber import Job, main

VERSION = "one"


class Flag(Job):
    TRIES = 1

    def Check(self):
        with open("seen", "a") as f:
            f.write(f"{VERSION} {os.getpid()}\\n")


if __name__ == "__main__":
    raise SystemExit(main(Flag))
'''


def test_a_script_agent_reloads_itself_on_sighup(jobs: Path, tmp_path: Path) -> None:
    """``main(Root)`` in agent mode: SIGHUP checks the script as it is now
    and, when it loads, starts it again in the same process (same pid, the
    new code); a script that does not load is kept as it was."""
    script = tmp_path / "site.py"
    script.write_text(SCRIPT_AGENT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "--every", "1h", "--no-progress",
         "--records", str(tmp_path / "records.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=child_env(),
    )
    err = Collect(proc)
    seen = tmp_path / "seen"

    def versions() -> list[str]:
        return seen.read_text().splitlines() if seen.exists() else []

    try:
        wait_until(lambda: err.count("agent: round 1:") == 1, 60, "the first round")
        # A script that does not load: the agent says so and keeps its jobs
        script.write_text(SCRIPT_AGENT.replace('VERSION = "one"', "VERSION = ("))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: err.has("job file not reloaded"), 60, "the failed reload")
        wait_until(lambda: len(versions()) == 2, 60, "a round with the jobs it had")
        # A script that loads: started again, same process, new code
        script.write_text(SCRIPT_AGENT.replace('VERSION = "one"', 'VERSION = "two"'))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: err.has("starting it again"), 60, "the restart")
        wait_until(lambda: len(versions()) == 3, 60, "a round of the new script")
        wait_until(lambda: err.count("agent: round 1:") == 2, 60, "its first round")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    err.thread.join()
    finish(proc)  # closes its pipes
    assert proc.returncode == 0, "".join(err.lines)
    lines = [line.split() for line in versions()]
    assert [v for v, _ in lines] == ["one", "one", "two"]
    assert {pid for _, pid in lines} == {str(proc.pid)}  # (exec: the same process)
    said = "".join(err.lines)
    assert "SyntaxError" in said or "never closed" in said, said
    with RecordStore(tmp_path / "records.db") as store:
        assert len(store.runs(limit=100)) == 3  # one history line per round
