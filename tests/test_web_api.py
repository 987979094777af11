"""The web view over HTTP: every page's JSON twin, filters, pages, the
picture, the token, CSRF, read-only, the Host check, hostile text.  A real
uvicorn server on loopback, real records of real runs, a real board."""

from __future__ import annotations

import io
import json
import re
import signal
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from dojobber import DoJobber
from dojobber.board import open_board
from dojobber.web import ServeError, WebOptions, load_token, serve
from tests.fakes.postgres import PASSWORD
from tests.fakes.procs import read_line, run_python, start_python
from tests.fakes.web import (
    ANSI,
    BACKENDS,
    HOSTILE,
    Fetch,
    Site,
    fetch,
    record_runs,
    records_location,
    web_server,
)

TOKEN = "test-token-0123456789abcdef"
JSON = {"accept": "application/json"}
BEARER = {"authorization": f"Bearer {TOKEN}", "accept": "application/json"}


@pytest.fixture(scope="module", params=BACKENDS)
def records(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    """Records of real runs, in a SQLite file or on a real PostgreSQL."""
    path = records_location(request, tmp_path_factory.mktemp("web"))
    return path, record_runs(path)


@pytest.fixture(scope="module")
def server(records: tuple[str, dict[str, int]],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    board = tmp_path_factory.mktemp("board") / "board.sqlite3"
    with web_server(records=str(records[0]), board=str(board), token=TOKEN,
                    token_given=True) as url:
        yield url


def login_cookie(url: str) -> str:
    reply = fetch(f"{url}/login?token={TOKEN}&next=/board")
    assert reply.status == 303
    assert reply.headers["location"] == "/board"
    cookie = reply.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie  # the cookie holds a value derived from it
    return cookie.split(";", 1)[0]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field on the page"
    return match[1]


# ----------------------------------------------------------------------
def test_runs_list_json_twin_newest_first(server: str, records: Any) -> None:
    ids = records[1]
    api = fetch(f"{server}/api/runs").json()
    accept = fetch(f"{server}/runs", headers=JSON).json()
    assert api == accept
    assert [r["id"] for r in api["runs"]] == sorted(ids.values(), reverse=True)
    by_id = {r["id"]: r for r in api["runs"]}
    assert by_id[ids["failed"]]["outcome"] == "not_converged"
    assert by_id[ids["failed"]]["counts"] == {
        "ok": 0, "changed": 1, "failed": 1, "blocked": 1, "pending": 0}
    assert by_id[ids["converged"]]["outcome"] == "converged"
    assert api["total"] == 3 and api["pages"] == 1
    assert set(api["roots"]) == {"Site", "Fetch", "HostileRoot"}


def test_secrets_stay_masked_in_html_and_json(server: str, records: Any) -> None:
    rid = records[1]["failed"]
    for page in (f"/runs/{rid}", "/runs", f"/api/runs/{rid}", "/api/runs"):
        text = fetch(server + page).text
        assert "hunter2" not in text and "user:secret" not in text, page
        assert PASSWORD not in text, page  # (the PostgreSQL records' own password)
    args = fetch(f"{server}/api/runs/{rid}").json()["run"]["args"]
    assert args["args"] == ["web1"]
    assert args["kwargs"]["password"] == "***"
    assert args["kwargs"]["url"] == "https://***@example.invalid/x"


def test_runs_filters_and_pages(server: str, records: Any) -> None:
    ids = records[1]
    only = fetch(f"{server}/api/runs?root=Fetch").json()
    assert [r["id"] for r in only["runs"]] == [ids["converged"]]
    failed = fetch(f"{server}/api/runs?outcome=not_converged").json()
    assert {r["id"] for r in failed["runs"]} == {ids["failed"], ids["hostile"]}
    assert fetch(f"{server}/api/runs?since=1h").json()["total"] == 3
    assert fetch(f"{server}/api/runs?until=2000-01-01").json()["total"] == 0
    second = fetch(f"{server}/api/runs?per_page=1&page=2").json()
    assert [r["id"] for r in second["runs"]] == [ids["converged"]]
    assert second["pages"] == 3
    assert second["prev"] == "/runs?per_page=1&page=1"
    assert second["next"] == "/runs?per_page=1&page=3"


@pytest.mark.parametrize(("query", "name"), [
    ("outcome=sideways", "outcome"), ("since=yesterday-ish", "since"), ("page=0", "page"),
    ("per_page=many", "per_page"),
])
def test_bad_filters_answer_400_naming_the_parameter(server: str, query: str, name: str) -> None:
    reply = fetch(f"{server}/api/runs?{query}")
    assert reply.status == 400
    assert reply.json()["error"].startswith(f"{name}: ")
    html = fetch(f"{server}/runs?{query}")
    assert html.status == 400 and "text/html" in html.headers["content-type"]


@pytest.fixture(params=BACKENDS)
def empty_records(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return records_location(request, tmp_path)


def test_trend_of_repeated_runs(empty_records: str, tmp_path: Path) -> None:
    path = empty_records
    for _ in range(3):
        dojob = DoJobber()
        dojob.configure(Site, records=str(path))
        dojob.checknrun()
    dojob = DoJobber()
    dojob.configure(Fetch, records=str(path))
    dojob.checknrun()
    with web_server(records=str(path), board=str(tmp_path / "b.sqlite3")) as url:
        runs = fetch(f"{url}/api/runs").json()["runs"]
    site = [r for r in runs if r["root"] == "Site"]
    assert [len(r["trend"]["points"]) for r in site] == [3, 2, 1]
    assert site[0]["trend"]["verdict"] == "not converging"
    assert [p["bad"] for p in site[0]["trend"]["points"]] == [2, 2, 2]
    assert site[2]["trend"]["verdict"] == "first run"
    fetch_run = next(r for r in runs if r["root"] == "Fetch")
    assert fetch_run["trend"]["verdict"] == "converged"


def test_run_page_json(server: str, records: Any) -> None:
    rid = records[1]["failed"]
    data = fetch(f"{server}/api/runs/{rid}").json()
    assert fetch(f"{server}/runs/{rid}", headers=JSON).json() == data
    statuses = {j["name"]: j["status"] for j in data["jobs"]}
    assert statuses == {"Fetch": "changed", "Broken": "failed", "Site": "blocked"}
    broken = next(j for j in data["jobs"] if j["name"] == "Broken")
    assert broken["tries"] == 2
    assert broken["error"] == "RuntimeError: Broken is broken"
    assert broken["url"] == f"/runs/{rid}/jobs/Broken"
    assert data["graph"]["stored"] and data["graph"]["jobs"] == 3
    assert data["live"] is None  # a finished run
    assert [line["job"] for line in data["logs"]][:2] == ["Fetch", "Fetch"]
    only_failed = fetch(f"{server}/api/runs/{rid}?status=failed").json()
    assert [j["name"] for j in only_failed["jobs"]] == ["Broken"]
    last = fetch(f"{server}/api/runs/last")
    assert last.status == 307 and last.headers["location"] == f"/api/runs/{records[1]['hostile']}"


def test_job_page_json(server: str, records: Any) -> None:
    rid = records[1]["failed"]
    data = fetch(f"{server}/api/runs/{rid}/jobs/Broken").json()
    job = data["job"]
    assert job["status"] == "failed" and job["tries"] == 2
    assert job["exception"] == "RuntimeError: Broken is broken"
    assert "raise RuntimeError" in job["traceback"]
    assert [(p["phase"], p["attempt"], p["ok"]) for p in job["phases"]] == [
        ("check", 1, False), ("run", 1, False), ("recheck", 1, False),
        ("check", 2, False), ("run", 2, False), ("recheck", 2, False)]
    offsets = [p["offset"] for p in job["phases"]]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert [d["name"] for d in data["deps"]] == ["Fetch"]
    assert [d["name"] for d in data["dependants"]] == ["Site"]
    assert {line["message"] for line in data["logs"]} == {"broken check"}
    missing = fetch(f"{server}/api/runs/{rid}/jobs/Nope")
    assert missing.status == 404 and "Nope" in missing.json()["error"]
    assert fetch(f"{server}/api/runs/99999").status == 404


def test_hostile_names_round_trip_as_data(server: str, records: Any) -> None:
    rid = records[1]["hostile"]
    data = fetch(f"{server}/api/runs/{rid}").json()
    names = [j["name"] for j in data["jobs"]]
    assert HOSTILE in names and ANSI in names
    job = fetch(f"{server}/api/runs/{rid}/jobs/{quote(HOSTILE, safe='')}").json()
    assert job["job"]["name"] == HOSTILE
    assert HOSTILE in job["job"]["exception"]
    html = fetch(f"{server}/runs/{rid}/jobs/{quote(HOSTILE, safe='')}").text
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "\x1b" not in html and "\\x1b[31mred" in html  # escapes shown, not obeyed


def test_graph_svg_is_clean_and_linked(server: str, records: Any) -> None:
    rid = records[1]["hostile"]
    reply = fetch(f"{server}/runs/{rid}/graph.svg")
    assert reply.status == 200 and reply.headers["content-type"] == "image/svg+xml"
    assert reply.headers["x-jobs-drawn"] == reply.headers["x-jobs-total"] == "3"
    root = ET.fromstring(reply.body)
    svg = "{http://www.w3.org/2000/svg}"
    assert not [e for e in root.iter() if e.tag.endswith(("script", "foreignObject"))]
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
    nodes = {g.get("data-job"): g for g in root.iter(f"{svg}g") if g.get("data-job")}
    assert set(nodes) == {HOSTILE, ANSI.replace("\x1b", "\\x1b"), "HostileRoot"}
    link = nodes[HOSTILE].find(f".//{svg}a")
    assert link is not None
    assert link.get("href") == f"/runs/{rid}/jobs/{quote(HOSTILE, safe='')}"
    assert "failed" in (nodes[HOSTILE].get("class") or "")


def test_graph_options(server: str, records: Any) -> None:
    rid = records[1]["failed"]
    capped = fetch(f"{server}/runs/{rid}/graph.svg?max_nodes=2")
    assert capped.headers["x-jobs-drawn"] == "2" and capped.headers["x-jobs-total"] == "3"
    focus = fetch(f"{server}/runs/{rid}/graph.svg?focus=Fetch")
    assert focus.headers["x-jobs-drawn"] == "3"
    bad = fetch(f"{server}/runs/{rid}/graph.svg?focus=Nope", headers=JSON)
    assert bad.status == 400 and bad.json()["error"].startswith("focus: ")
    assert fetch(f"{server}/runs/{rid}/graph.svg?max_nodes=0").status == 400


def test_a_picture_is_drawn_once_however_many_ask(records: Any) -> None:
    """Requests for the same picture while it is being drawn (the run
    page's prefetch, a reload, a second tab) share one layout."""
    from dojobber.web._live import browsable
    from dojobber.web._svg import GraphPicture, PictureCache

    location, ids = records
    drawn: list[int] = []

    class Counting(PictureCache):
        def _draw(self, store: Any, run_id: int, focus: str | None,  # type: ignore[override]
                  max_nodes: int | None) -> GraphPicture:
            drawn.append(run_id)
            return PictureCache._draw(store, run_id, focus, max_nodes)

    cache = Counting()
    stores = [browsable(location) for _ in range(4)]
    try:
        cache.prefetch(lambda: stores[0], ids["failed"], 250)
        start = threading.Barrier(3)

        def ask(store: Any) -> GraphPicture:
            start.wait()
            return cache.picture(store, str(ids["failed"]), {}, 250)

        with ThreadPoolExecutor(3) as pool:
            pictures = list(pool.map(ask, stores[1:]))
        assert drawn == [ids["failed"]]
        assert all(p is pictures[0] for p in pictures) and pictures[0].drawn == 3
        cache.picture(stores[1], str(ids["failed"]), {"focus": "Fetch"}, 250)
        assert len(drawn) == 2  # other options: another picture
    finally:
        cache.close()
        for store in stores:
            store.close()


def test_events_of_a_finished_run(server: str, records: Any) -> None:
    rid = records[1]["failed"]
    reply = fetch(f"{server}/runs/{rid}/events")
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [block for block in reply.text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    kinds = [re.search(r"^event: (\w+)", e, re.M)[1] for e in events]  # type: ignore[index]
    assert kinds == ["update", "end"]
    data = json.loads(re.search(r"^data: (.*)$", events[0], re.M)[1])  # type: ignore[index]
    assert data["finished"] and data["run"]["outcome"] == "not_converged"
    assert {j["name"]: j["status"] for j in data["jobs"]} == {
        "Fetch": "changed", "Broken": "failed", "Site": "blocked"}


def test_security_headers_on_every_answer(server: str, records: Any) -> None:
    for path in ("/runs", "/api/runs", "/runs/99999", "/static/app.css", "/board", "/login"):
        reply = fetch(server + path)
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
        assert "'unsafe-inline'" not in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["x-frame-options"] == "DENY"


def test_static_assets_are_in_the_package(server: str) -> None:
    html = fetch(f"{server}/runs").text
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("/"), f"{ref} is not served by the package"
        assert not ref.startswith("//")
    for asset in ("/static/app.css", "/static/dojobber.js", "/static/favicon.svg"):
        assert fetch(server + asset).status == 200


def test_other_host_names_refused_on_loopback(server: str) -> None:
    """A DNS rebinding page (evil.example resolving to 127.0.0.1) gets nothing."""
    assert fetch(f"{server}/api/runs", headers={"host": "evil.example"}).status == 421
    assert fetch(f"{server}/api/runs", headers={"host": "localhost:1234"}).status == 200


# ----------------------------------------------------------------------
# The board: post and cancel need the token, CSRF from a browser session.
def test_board_post_needs_the_token(server: str) -> None:
    reply = fetch(f"{server}/api/board/post", method="POST", headers=JSON,
                  form={"target": "site.py:Site"})
    assert reply.status == 401 and "log in" in reply.json()["error"]
    page = fetch(f"{server}/board").text
    assert 'id="post-form"' not in page and "Log in</a> with the token" in page


def test_board_post_and_cancel_with_bearer_token(server: str) -> None:
    posted = fetch(f"{server}/api/board/post", method="POST", headers=BEARER,
                   form={"target": "site.py:Site", "args": '["web1"]',
                         "kwargs": '{"token": "abc", "env": "prod"}'})
    assert posted.status == 200, posted.text
    request_id = int(posted.json()["result"].split("-")[1])
    board = fetch(f"{server}/api/board").json()
    req = next(r for r in board["requests"] if r["id"] == request_id)
    assert req["state"] == "waiting" and req["args"] == ["web1"]
    assert req["kwargs"] == {"token": "***", "env": "prod"}  # masked as the records mask
    cancel = fetch(f"{server}/api/board/{request_id}/cancel", method="POST", headers=BEARER)
    assert cancel.status == 200 and cancel.json()["notice"] == f"request {request_id} cancelled"
    assert fetch(f"{server}/api/board?state=cancelled").json()["requests"][0]["id"] == request_id
    bad = fetch(f"{server}/api/board/post", method="POST", headers=BEARER,
                form={"target": "x.py:X", "args": "[1,"})
    assert bad.status == 400 and bad.json()["error"].startswith("args: not JSON")
    gone = fetch(f"{server}/api/board/424242/cancel", method="POST", headers=BEARER)
    assert gone.status == 404


def test_board_post_from_a_browser_session_needs_csrf(server: str) -> None:
    cookie = login_cookie(server)
    page = fetch(f"{server}/board", headers={"cookie": cookie}).text
    assert 'id="post-form"' in page
    csrf = csrf_of(page)
    form = {"target": "site.py:Site", "args": '["csrf"]'}
    no_csrf = fetch(f"{server}/board/post", method="POST", headers={"cookie": cookie}, form=form)
    assert no_csrf.status == 403 and "CSRF" in no_csrf.text
    wrong = fetch(f"{server}/board/post", method="POST", headers={"cookie": cookie},
                  form={**form, "csrf": "0" * 64})
    assert wrong.status == 403
    other_site = fetch(f"{server}/board/post", method="POST",
                       headers={"cookie": cookie, "origin": "http://evil.example"},
                       form={**form, "csrf": csrf})
    assert other_site.status == 403 and "another site" in other_site.text
    ok = fetch(f"{server}/board/post", method="POST",
               headers={"cookie": cookie, "origin": server}, form={**form, "csrf": csrf})
    assert ok.status == 303 and ok.headers["location"].startswith("/board?notice=posted-")
    shown = fetch(server + ok.headers["location"], headers={"cookie": cookie}).text
    assert re.search(r"posted request \d+", shown)


def test_board_notice_is_never_text_from_the_url(server: str) -> None:
    page = fetch(f"{server}/board?notice=Your+token+expired,+go+to+evil.example").text
    assert "evil.example" not in page


def test_login_refuses_a_wrong_token_and_foreign_next(server: str) -> None:
    assert fetch(f"{server}/login?token=wrong-token-xxxxxxxx").status == 403
    reply = fetch(f"{server}/login?token={TOKEN}&next=//evil.example/x")
    assert reply.status == 303 and reply.headers["location"] == "/runs"


def test_read_only_refuses_changes_whatever_the_token(tmp_path: Path) -> None:
    board_path = tmp_path / "board.sqlite3"
    waiting = open_board(board_path).post("site.py:Site").id
    with web_server(records=str(tmp_path / "r.sqlite3"), board=str(board_path), token=TOKEN,
                    token_given=True, read_only=True) as url:
        posted = fetch(f"{url}/api/board/post", method="POST", headers=BEARER,
                       form={"target": "site.py:Site"})
        assert posted.status == 403 and "read-only" in posted.json()["error"]
        cancel = fetch(f"{url}/api/board/{waiting}/cancel", method="POST", headers=BEARER)
        assert cancel.status == 403
        cookie = login_cookie(url)
        page = fetch(f"{url}/board", headers={"cookie": cookie}).text
        assert 'id="post-form"' not in page and "cancel-form" not in page
        assert "read-only" in page
    assert open_board(board_path).get(waiting).state == "waiting"
    assert len(open_board(board_path).requests()) == 1


# ----------------------------------------------------------------------
# Off loopback: the token on every request.
def test_public_address_needs_the_token_everywhere(tmp_path: Path) -> None:
    # The app is told it listens on every address; the test server itself
    # binds 127.0.0.1 only (tests never listen beyond loopback).
    with web_server(records=str(tmp_path / "r.sqlite3"), board=str(tmp_path / "b.sqlite3"),
                    host="0.0.0.0", token=TOKEN, token_given=True) as url:
        assert fetch(f"{url}/api/runs").status == 401
        redirect = fetch(f"{url}/runs?root=x")
        assert redirect.status == 303
        assert redirect.headers["location"] == "/login?next=%2Fruns%3Froot%3Dx"
        assert fetch(f"{url}/api/runs", headers=BEARER).status == 200
        assert fetch(f"{url}/static/app.css").status == 200
        assert fetch(f"{url}/login").status == 200
        cookie = login_cookie(url)
        assert fetch(f"{url}/api/runs", headers={"cookie": cookie}).status == 200
        # Any Host is fine here: the token guards it.
        assert fetch(f"{url}/api/runs", headers={**BEARER, "host": "build.example"}).status == 200


def test_public_address_without_a_token_is_refused() -> None:
    with pytest.raises(ServeError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        WebOptions(host="0.0.0.0").check()
    with pytest.raises(ServeError, match="without a token"):
        WebOptions(host="example.org").check()
    WebOptions(host="127.0.0.5").check()
    WebOptions(host="::1").check()
    WebOptions(host="0.0.0.0", token=TOKEN, token_given=True).check()


def test_token_from_file_or_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert load_token(str(token_file), environ={}) == TOKEN
    assert load_token(None, environ={"DOJOBBER_WEB_TOKEN": TOKEN}) == TOKEN
    assert load_token(None, environ={}) is None
    with pytest.raises(ServeError, match="at least 16"):
        load_token(None, environ={"DOJOBBER_WEB_TOKEN": "short"})
    with pytest.raises(ServeError, match="cannot read it"):
        load_token(str(tmp_path / "missing"), environ={})




def test_serve_refuses_a_public_address_before_listening() -> None:
    out = io.StringIO()
    with pytest.raises(ServeError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        serve(WebOptions(host="0.0.0.0", port=0), out=out)
    assert out.getvalue() == ""


SERVE = "import sys, dojobber; sys.exit(dojobber.main())"


def test_dojobber_serve_prints_a_url_that_logs_in(tmp_path: Path) -> None:
    child = start_python(SERVE, "serve", "--port", "0", "--records", str(tmp_path / "r.sqlite3"),
                         "--board", str(tmp_path / "b.sqlite3"))
    try:
        line = read_line(child)
        match = re.fullmatch(r"dojobber serve: open (http://127\.0\.0\.1:\d+)(/login\?token=\S+)",
                             line)
        assert match, line
        base, login = match[1], match[2]
        reply = fetch(base + login)
        assert reply.status == 303 and reply.headers["location"] == "/runs"
        cookie = reply.headers["set-cookie"].split(";", 1)[0]
        board = fetch(f"{base}/board", headers={"cookie": cookie}).text
        assert 'id="post-form"' in board
        assert fetch(f"{base}/api/runs").json()["runs"] == []
    finally:
        child.send_signal(signal.SIGINT)  # as Ctrl-C: uvicorn stops
        _, err = child.communicate(timeout=30)  # (and closes the pipes)
    assert child.returncode == 0, err


def test_dojobber_serve_reads_postgresql_records(pg_url: str, tmp_path: Path) -> None:
    ids = record_runs(pg_url)
    child = start_python(SERVE, "serve", "--port", "0", "--records", pg_url,
                         "--board", str(tmp_path / "b.sqlite3"))
    try:
        line = read_line(child)
        base = re.search(r"(http://127\.0\.0\.1:\d+)/login", line)[1]  # type: ignore[index]
        runs = fetch(f"{base}/api/runs").json()
        assert [r["id"] for r in runs["runs"]] == sorted(ids.values(), reverse=True)
        page = fetch(f"{base}/runs/{ids['failed']}").text
        assert "Broken is broken" in page and PASSWORD not in page
        assert fetch(f"{base}/runs/{ids['failed']}/graph.svg").status == 200
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)  # (and closes the pipes)
    assert child.returncode == 0, err
    assert PASSWORD not in out


def test_dojobber_serve_with_the_token_from_the_environment(tmp_path: Path) -> None:
    child = start_python(SERVE, "serve", "--port", "0", "--read-only", "--records",
                         str(tmp_path / "r.sqlite3"), "--board", str(tmp_path / "b.sqlite3"),
                         DOJOBBER_WEB_TOKEN=TOKEN)
    try:
        line = read_line(child)
        assert TOKEN not in line  # a token the user gave is never printed
        base = re.search(r"(http://127\.0\.0\.1:\d+)/runs", line)[1]  # type: ignore[index]
        # (printed with the first line, so perhaps already read into the
        # pipe's buffer, where select() cannot see it)
        assert child.stdout is not None
        assert "read-only" in child.stdout.readline()
        reply = fetch(f"{base}/api/board/post", method="POST", headers=BEARER,
                      form={"target": "x.py:X"})
        assert reply.status == 403 and "read-only" in reply.json()["error"]
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)  # (and closes the pipes)
    # uvicorn shuts down cleanly, then ends by the signal as it came.
    assert child.returncode == -signal.SIGTERM
    assert "Traceback" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org"])
def test_dojobber_serve_refuses_a_public_address_without_a_token(host: str) -> None:
    done = run_python(["-m", "dojobber", "serve", "--host", host, "--port", "0"])
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr  # one line saying why
    assert done.stderr.startswith(f"Error: refusing to listen on {host} without a token")


def test_import_dojobber_imports_no_web_stack() -> None:
    code = (
        "import sys, dojobber, dojobber.records, dojobber.board, dojobber.render; "
        "print([m for m in ('starlette', 'uvicorn', 'jinja2', 'sse_starlette', 'multipart', "
        "'playwright') if m in sys.modules])"
    )
    done = run_python(["-c", code])
    assert done.stdout.strip() == "[]", done.stderr


def test_web_view_example(empty_records: str, tmp_path: Path) -> None:
    done = run_python(["examples/web_view.py", "--check", "--dir", str(tmp_path),
                       "--records", empty_records],
                      cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [
        "run 2: Published converged, trend converged",
        "run 1: Published not_converged, trend first run",
    ]


def test_dojobber_serve_refuses_unreadable_records(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a records database\n" * 200)
    done = run_python(["-m", "dojobber", "serve", "--port", "0", "--records", str(bad),
                       "--board", str(tmp_path / "b.sqlite3")])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"Error: run records at {bad}: "), done.stderr
    assert done.stderr.count("\n") == 1
