"""Webhook notifier: POST a JSON summary of each run when it ends.

``configure(listeners=[WebhookNotifier("https://chat.example/hooks/abc")])``
(CLI: ``--notify URL``).  The body (``Content-Type: application/json``)::

    {"event": "run_finished", "root": "Deploy", "target": "Deploy",
     "outcome": "not_converged", "converged": false, "interrupted": false,
     "no_act": false, "started": 1700000000.0, "finished": 1700000012.5,
     "duration": 12.5, "host": "build1", "run_id": 42,
     "counts": {"ok": 10, "changed": 2, "failed": 1, "blocked": 3},
     "failed": [{"job": "Upload", "tries": 3, "error": "OSError: disk full"}],
     "would_run": []}

``outcome`` is the run's :class:`~dojobber.RunOutcome` (``converged``,
``not_converged``, ``stopped``, ``interrupted`` or, for a dry run that
found work, ``changes_pending``), ``converged`` says whether it is
``converged``.  ``counts`` has every status but pending (in a dry run also
``would_run`` and ``not_checked``); ``would_run`` lists, in a dry run, the jobs that would
run: ``{"job": ..., "plan": ...}`` (``plan``: what its ``Plan()`` said,
or null).  ``run_id`` is the records id when a
:class:`~dojobber.records.RecordsListener` is given as ``records`` (else
null); ``failed`` lists at most 50 jobs.
Delivery never affects the run: a refused connection, a timeout or an HTTP
error status is one WARNING line on the ``dojobber.notify`` logger, and the
outcome is kept in :attr:`WebhookNotifier.delivered` / :attr:`~WebhookNotifier.error`.
Uses only the standard library (:mod:`urllib.request`).
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from ._describe import exception_text, mask_urls
from ._version import __version__
from .errors import ConfigurationError
from .events import Listener
from .results import JobStatus, RunOutcome, RunResult

if TYPE_CHECKING:
    from .records import RecordsListener

__all__ = ["WebhookNotifier", "run_summary"]

log = logging.getLogger("dojobber.notify")

#: Statuses only a dry run has (counted only in a dry run's summary).
_DRY = (JobStatus.WOULD_RUN, JobStatus.NOT_CHECKED)
#: Most failed (and most would-run) jobs listed in a summary.
MAX_FAILED = 50


def run_summary(result: RunResult, run_id: int | None = None) -> dict[str, Any]:
    """The JSON-ready summary of a run that the webhook POSTs."""
    counts = result.counts()
    failed = result.failed()
    outcome = result.outcome
    return {
        "event": "run_finished",
        "root": result.graph.root_name,
        "target": result.target,
        "outcome": outcome.value,
        "converged": outcome.converged,
        "interrupted": outcome is RunOutcome.INTERRUPTED,
        "no_act": result.no_act,
        "started": result.started,
        "finished": result.finished,
        "duration": round(result.duration, 6),
        "host": socket.gethostname(),
        "run_id": run_id,
        "counts": {
            status.value: counts[status] for status in JobStatus
            if status is not JobStatus.PENDING and (result.no_act or status not in _DRY)
        },
        "failed": [
            {
                "job": job.name,
                "tries": job.tries,
                "error": None
                if job.exception is None
                else exception_text(job.exception),
            }
            for job in failed[:MAX_FAILED]
        ],
        "would_run": [
            {"job": job.name, "plan": None if job.plan is None else mask_urls(job.plan)}
            for job in result.would_run()[:MAX_FAILED]
        ],
    }


def _shown(url: str) -> str:
    """The URL without credentials, path or query (they often hold tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}/..." if parts.path.strip("/") else f"{parts.scheme}://{host}"


class WebhookNotifier(Listener):
    """POSTs :func:`run_summary` to ``url`` when a run ends.

    timeout: seconds for connecting and for the answer.
    headers: extra request headers (for example an Authorization header).
    records: a records listener whose ``run_id`` goes into the summary.
    only_failures: notify only about runs that did not converge.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        records: RecordsListener | None = None,
        only_failures: bool = False,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ConfigurationError("webhook url", url, "give an http:// or https:// URL")
        if not timeout > 0:
            raise ConfigurationError("webhook timeout", timeout, "give seconds > 0")
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.records = records
        self.only_failures = only_failures
        #: HTTP status of the last delivery, or None.
        self.delivered: int | None = None
        #: Why the last delivery failed, or None.
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"WebhookNotifier({_shown(self.url)!r})"

    def run_finished(self, result: RunResult) -> None:
        self.delivered = None
        self.error = None
        if self.only_failures and result.outcome.converged:
            return
        run_id = self.records.run_id if self.records is not None else None
        self.send(run_summary(result, run_id))

    def send(self, payload: dict[str, Any]) -> bool:
        """POST ``payload``; True when the endpoint answered 2xx."""
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"dojobber/{__version__}",
                **self.headers,
            },
            method="POST",
        )
        where = _shown(self.url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                self.delivered = int(answer.status)
                return True
        except urllib.error.HTTPError as err:
            self.delivered = err.code
            self.error = f"HTTP {err.code} {err.reason}"
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                self.error = f"no answer within {self.timeout:g}s"
            else:
                self.error = f"unreachable: {err.reason}"
        except TimeoutError:
            self.error = f"no answer within {self.timeout:g}s"
        except OSError as err:
            self.error = f"unreachable: {err}"
        log.warning(
            "webhook %s: run summary not delivered (%s); the run's outcome is unaffected",
            where,
            self.error,
        )
        return False
