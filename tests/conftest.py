"""Shared pytest configuration.  Topic fixtures live in tests/fakes/*,
shared helpers in tests/helpers.py, hypothesis strategies in
tests/strategies.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.postgres import PostgresServer, pg_bin_dir


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips", action="store_true",
        help="fail the run when a test is skipped (make test installs everything the "
             "tests need, so a skip there means a missing part went unnoticed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "pytest-timeout is not installed: pip install -e '.[test]' (make test does)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not session.config.getoption("no_skips"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(
            f"--no-skips: {len(skipped)} test(s) skipped; install what they need "
            "(scripts/system-deps.sh, the test extra)", red=True, bold=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _keep_cwd() -> Iterator[None]:
    """Jobs may chdir; every test starts and ends in the same directory."""
    here = os.getcwd()
    yield
    os.chdir(here)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (initdb + pg_ctl on a free
    loopback port, as an unprivileged user), removed after."""
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: "
                    "apt-get install postgresql (scripts/system-deps.sh)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL (with password) of a new empty database on the session's server."""
    if not postgres_server.started:  # a test that stopped it and failed
        postgres_server.start()
    return postgres_server.create_database()
