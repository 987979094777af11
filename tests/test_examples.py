"""The runnable examples run (each is also documented in README or docs/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_fails_first_then_converges(tmp_path: Path) -> None:
    out = run("website.py", "--dir", str(tmp_path / "site"), "--graphs", str(tmp_path))
    runs = out.split("== Run ")
    assert "Sitemap         failed" in runs[1] and "blocked" in runs[1]
    assert "Published: converged (8 ok, 1 changed)" in runs[2]
    assert "Published: converged (9 ok)" in runs[3]


@pytest.mark.slow
def test_parallel_example_converges_on_threads_and_processes() -> None:
    out = run("parallel.py", "--executor", "processes:2")
    # global_storage written by jobs in other processes is merged back
    assert out.count(": 12 hosts up in ") == 3, out


def test_run_queue_example(tmp_path: Path) -> None:
    out = run("run_queue.py", "--dir", str(tmp_path))
    assert "(already waiting)" in out and "carried out 2 request(s)" in out
    assert (tmp_path / "hello-ann.txt").read_text() == "hello ann\n"


def test_converge_example_converges_and_gives_up(tmp_path: Path) -> None:
    out = run("converge.py", "--dir", str(tmp_path / "a"))
    assert "converged after 3 rounds" in out
    gave_up = subprocess.run(
        [sys.executable, str(EXAMPLES / "converge.py"), "--dir", str(tmp_path / "b"),
         "--password", "wrong"], capture_output=True, text=True, timeout=120,
    )
    assert gave_up.returncode == 5
    assert "gave up after 1 round" in gave_up.stdout


def test_run_queue_example_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    out = run("run_queue.py", "--dir", str(tmp_path), "--board", pg_url, "--records", pg_url)
    assert "(already waiting)" in out and "carried out 2 request(s)" in out
    assert "ann -> done (" in out and "bob -> done (" in out
    assert "s, run 1)" in out and "s, run 2)" in out  # runs recorded in the database


def test_check_mode_example_says_what_would_change(tmp_path: Path) -> None:
    site = tmp_path / "site"
    out = run("check_mode.py", "--dir", str(site))
    dry, real, again = out.split("== ")[1:]
    assert "Published: changes pending (2 would run, 1 not checked)" in dry
    assert f"would run   Config: would: write {site / 'site.ini'} with port 8080" in dry
    assert f"{site / 'about.html'}" in dry  # the second line of Pages' Plan
    assert "Published: converged (3 changed)" in real
    assert "nothing would change" in again
