"""Shared pytest configuration.  Topic fixtures live in tests/fakes/*."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _keep_cwd() -> Iterator[None]:
    """Jobs may chdir; every test starts and ends in the same directory."""
    here = os.getcwd()
    yield
    os.chdir(here)
