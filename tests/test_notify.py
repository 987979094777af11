"""Webhook notifier against a real HTTP server on loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dojobber import DoJobber, Job
from dojobber.errors import ConfigurationError
from dojobber.notify import WebhookNotifier
from dojobber.records import RecordsListener
from tests.fakes.webhook import closed_port_url, webhook_server


class Good(Job):
    def Check(self) -> None:
        pass


class Bad(Job):
    DEPS = [Good]
    TRIES = 1

    def Check(self) -> None:
        raise OSError("disk full")


class Top(Job):
    DEPS = [Bad]

    def Check(self) -> None:
        pass


def test_posts_a_json_summary_at_run_end(tmp_path: Path) -> None:
    with webhook_server() as hook:
        records = RecordsListener(tmp_path / "r.db")
        notifier = WebhookNotifier(
            hook.url, records=records, headers={"Authorization": "Bearer abc"}
        )
        dj = DoJobber()
        dj.configure(Top, listeners=[records, notifier])
        dj.checknrun()
        records.close()
    assert notifier.delivered == 200 and notifier.error is None
    (body,) = hook.received
    assert body["event"] == "run_finished"
    assert (body["root"], body["outcome"], body["converged"]) == ("Top", "not_converged", False)
    assert body["counts"] == {"ok": 1, "changed": 0, "failed": 1, "blocked": 1}
    assert body["failed"] == [{"job": "Bad", "tries": 1, "error": "OSError: disk full"}]
    assert body["run_id"] == records.run_id is not None
    assert body["duration"] >= 0
    assert hook.headers[0]["Content-Type"] == "application/json"
    assert hook.headers[0]["Authorization"] == "Bearer abc"


def test_only_failures_skips_converged_runs() -> None:
    with webhook_server() as hook:
        notifier = WebhookNotifier(hook.url, only_failures=True)
        dj = DoJobber()
        dj.configure(Good, listeners=[notifier])
        dj.checknrun()
        dj.configure(Top, listeners=[notifier])
        dj.checknrun()
    assert [b["root"] for b in hook.received] == ["Top"]


def test_server_down_is_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    url = closed_port_url()
    notifier = WebhookNotifier(url, timeout=5)
    dj = DoJobber()
    dj.configure(Good, listeners=[notifier])
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        assert dj.checknrun().success()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "dojobber.notify"]
    port = url.split(":")[2].split("/")[0]
    assert f"webhook http://127.0.0.1:{port}/...: run summary not delivered" in line
    assert "unreachable" in line and "the run's outcome is unaffected" in line
    assert "hooks" not in line  # the path (often a token) is not logged
    assert notifier.delivered is None
    # The notifier stays attached: it raised nothing.
    assert not [r for r in caplog.records if "detached" in r.getMessage()]


def test_error_status_and_timeout_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with webhook_server() as hook:
        hook.status = 500
        notifier = WebhookNotifier(hook.url)
        dj = DoJobber()
        dj.configure(Good, listeners=[notifier])
        with caplog.at_level(logging.WARNING, logger="dojobber.notify"):
            dj.checknrun()
        assert notifier.delivered == 500
        assert "HTTP 500" in caplog.records[-1].getMessage()
        hook.status, hook.delay = 200, 2.0
        slow = WebhookNotifier(hook.url, timeout=0.2)
        dj.configure(Good, listeners=[slow])
        dj.checknrun()
        assert slow.error == "no answer within 0.2s"
        assert len(hook.received) == 2


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        WebhookNotifier("ftp://127.0.0.1/x")
    with pytest.raises(ConfigurationError, match="timeout"):
        WebhookNotifier("http://127.0.0.1/x", timeout=0)
