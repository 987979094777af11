"""The test suite's own settings are in force (strict pytest, timeouts)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes.procs import REPO


def test_strict_settings_and_timeout_are_in_force(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getini("strict") is True
    assert pytestconfig.getini("timeout") == "300"
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert pytestconfig.getini("filterwarnings")[0] == "error"


PROBES = {
    "test_probe.py": """
        import time
        import warnings

        import pytest

        def test_hangs():
            time.sleep(60)

        def test_warns():
            warnings.warn("something to look at", DeprecationWarning)

        @pytest.mark.xfail(reason="expected to fail")
        def test_passes():
            pass
    """,
    "test_typo.py": """
        import pytest

        @pytest.mark.sloow
        def test_typo():
            pass
    """,
}


@pytest.mark.slow
def test_hangs_warnings_strict_xfail_and_unknown_markers_fail(tmp_path: Path) -> None:
    """This repository's pytest configuration on probe tests, in one child."""
    for name, body in PROBES.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "-rA",
         "-o", "timeout=2", "--continue-on-collection-errors", *PROBES],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert "FAILED test_probe.py::test_hangs - Failed: Timeout (>2.0s)" in out
    assert "FAILED test_probe.py::test_warns - DeprecationWarning: something to look at" in out
    assert "FAILED test_probe.py::test_passes" in out and "XPASS(strict)" in out
    assert "'sloow' not found in `markers`" in out
    assert "3 failed, 1 error" in out
