"""``dojobber list FILE:Root``: the graph's jobs, dependencies first, with
options and where each is defined; nothing is run."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from dojobber.cli import main

JOBS = textwrap.dedent(
    '''
    from dojobber import DummyJob, Job, RunonlyJob

    RAN = []


    class Fetch(Job):
        """Get the sources."""
        URL = "https://example.org/src.tar"
        api_token = "s3cret"
        TRIES = 5

        def Check(self, **kw):
            RAN.append("check")

        def Run(self, **kw):
            RAN.append("run")


    class Announce(RunonlyJob):
        def Run(self, **kw):
            RAN.append("run")


    Mirror = Fetch.variant("Mirror", URL="https://mirror.example.org/src.tar")


    class Release(DummyJob):
        """Everything."""
        DEPS = [Mirror, Fetch, Announce]
    '''
)


@pytest.fixture
def jobs_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "release.py"
    path.write_text(JOBS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    return path


def test_list_shows_jobs_in_dependency_order(
    jobs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "release.py:Release", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["jobs"]}
    order = [row["name"] for row in data["jobs"]]
    assert order[-1] == "Release" and set(order) == {"Mirror", "Fetch", "Announce", "Release"}
    for row in data["jobs"]:  # every dependency is listed before its dependant
        assert all(order.index(dep) < order.index(row["name"]) for dep in row["depends_on"])
    assert rows["Release"]["depends_on"] == ["Mirror", "Fetch", "Announce"]
    assert rows["Release"]["kind"] == "dummy" and rows["Announce"]["kind"] == "run-only"
    assert rows["Mirror"]["options"]["URL"] == "https://mirror.example.org/src.tar"
    assert rows["Fetch"]["options"]["tries"] == 5 and rows["Release"]["options"]["tries"] == 3
    assert rows["Fetch"]["options"]["api_token"] != "s3cret"  # masked
    source = jobs_file.read_text().splitlines()
    for name, statement in (("Fetch", "class Fetch(Job):"), ("Mirror", "class Fetch(Job):"),
                            ("Release", "class Release(DummyJob):")):
        where, line = rows[name]["defined_at"].rsplit(":", 1)
        assert where == "release.py" and source[int(line) - 1] == statement
    assert rows["Fetch"]["doc"] == "Get the sources."


def test_list_as_a_table_runs_nothing(jobs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "release.py:Release"]) == 0
    out = capsys.readouterr().out
    assert "Release: 4 jobs, dependencies first" in out
    assert re.search(r"^4\s+Release\s+dummy\s+Mirror, Fetch, Announce\s", out, re.M), out
    assert "s3cret" not in out
    import sys

    assert sys.modules["release"].RAN == []  # listing runs no Check or Run


def test_list_of_a_bad_target_is_a_usage_error(
    jobs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "release.py:Nope"]) == 2
    assert "Nope" in capsys.readouterr().err
