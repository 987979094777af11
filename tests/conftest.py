"""Shared pytest configuration.  Topic fixtures live in tests/fakes/*."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.postgres import PostgresServer, pg_bin_dir


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
