"""The web view for tests: the real server (uvicorn on a free loopback
port, in a thread of the test run), a plain HTTP client, Debian's Chromium
driven by Playwright, and run records made by real runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dojobber import DoJobber, Job
from tests.fakes.procs import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Text that would run script if a page ever parsed it as HTML.
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
#: A name with quotes and an ANSI colour escape in it.
ANSI = "\x1b[31mred\x1b[0m \"quoted\" 'single'"


@contextmanager
def web_server(**options: Any) -> Iterator[str]:
    """``dojobber.web`` serving ``WebOptions(**options)`` on 127.0.0.1 (a
    free port) for the duration; yields its base URL."""
    import uvicorn

    from dojobber.web import WebOptions, create_app

    opts = WebOptions(**options)
    opts.check()
    sock = socket.socket(socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(opts), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the web server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request (redirects are not followed: they are answers too)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()},
                         response.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser context on Debian's Chromium (headless, a fresh
    profile directory); skips when Chromium or Playwright is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/system-deps.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="dojobber-chromium-")
    try:
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# ----------------------------------------------------------------------
# Records made by real runs
log = logging.getLogger("tests.web")


class Fetch(Job):
    def Check(self, *args: Any, **kw: Any) -> str:
        if not self.global_storage.get("fetched"):
            raise ValueError("not fetched yet")
        log.info("fetched into %s", self.global_storage["fetched"])
        return "payload"

    def Run(self, *args: Any, **kw: Any) -> None:
        log.info("fetching")
        self.global_storage["fetched"] = "/srv/www"


class Broken(Job):
    DEPS = [Fetch]
    TRIES = 2
    RETRY_DELAY = 0

    def Check(self, *args: Any, **kw: Any) -> None:
        log.warning("broken check")
        raise RuntimeError("Broken is broken")


class Site(Job):
    DEPS = [Broken]

    def Check(self, *args: Any, **kw: Any) -> None:
        pass


def _hostile_graph() -> type[Job]:
    """A graph whose job names, log lines and exception are hostile text."""

    def loud_check(self: Job, *args: Any, **kw: Any) -> None:
        log.warning("log line %s %s", HOSTILE, ANSI)
        raise ValueError(f"exception {HOSTILE} {ANSI}")

    evil = type(HOSTILE, (Job,), {"Check": loud_check, "TRIES": 1})
    quoted = type(ANSI, (Job,), {"Check": lambda self, *args, **kw: None})
    return type("HostileRoot", (Job,), {"DEPS": [evil, quoted],
                                        "Check": lambda self, *args, **kw: None})


def records_location(request: pytest.FixtureRequest, directory: Path) -> str:
    """Where a module's records go, by its fixture's parameter: a SQLite
    file in ``directory``, or a new database on the session's PostgreSQL."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        if not server.started:
            server.start()
        return str(server.create_database())
    return str(directory / "records.sqlite3")


#: The records backends the web view is tested on.
BACKENDS = ["sqlite", "postgres"]


def record_runs(path: str | Path) -> dict[str, int]:
    """Record a few real runs into ``path`` (a file or a PostgreSQL URL): a
    failing one, one that converges, and one full of hostile text.  Returns
    their ids by name."""
    ids: dict[str, int] = {}
    dojob = DoJobber()
    dojob.configure(Site, records=str(path))
    dojob.set_args("web1", password="hunter2", url="https://user:secret@example.invalid/x")
    dojob.checknrun()
    ids["failed"] = _last_id(path)
    dojob = DoJobber()
    dojob.configure(Fetch, records=str(path))
    dojob.checknrun()
    ids["converged"] = _last_id(path)
    dojob = DoJobber()
    dojob.configure(_hostile_graph(), records=str(path))
    dojob.checknrun()
    ids["hostile"] = _last_id(path)
    return ids


def _last_id(path: str | Path) -> int:
    from dojobber.records import open_store

    with open_store(path) as store:
        return store.resolve("last")


#: A child process that runs a graph whose jobs wait for gate files, and
#: records it (flushing each batch at once).
GATED_RUN = r"""
import os, sys, time, logging
from dojobber import DoJobber, Job
from dojobber.records import RecordsListener

records, gates = sys.argv[1], sys.argv[2]
gate_first = sys.argv[3:] == ["--gate-first"]
log = logging.getLogger("gated")

def gated(name, deps):
    def check(self, **kw):
        if name != "First" or gate_first:
            while not os.path.exists(os.path.join(gates, name)):
                time.sleep(0.02)
        log.info("%s passes", name)
    return type(name, (Job,), {"DEPS": deps, "Check": check})

first = gated("First", [])
second = gated("Second", [first])
third = gated("Third", [second])
root = gated("Root", [third])
listener = RecordsListener(records, flush_interval=0.0)
dojob = DoJobber()
dojob.configure(root, listeners=[listener], workers=2)
print("ready", flush=True)
dojob.checknrun()
print("done", listener.run_id, flush=True)
"""
