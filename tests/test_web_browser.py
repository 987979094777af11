"""The web view in a real browser: Debian's Chromium driven by Playwright
(headless, a fresh profile) against the real server on loopback."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")
pytest.importorskip("playwright")

from dojobber.board import open_board
from dojobber.records import open_store
from tests.fakes.procs import finish, read_line, start_python, wait_until
from tests.fakes.web import (
    ANSI,
    BACKENDS,
    CHROMIUM,
    GATED_RUN,
    HOSTILE,
    chromium,
    record_runs,
    records_location,
    web_server,
)

TOKEN = "browser-token-0123456789abcdef"
#: Generous bounds for the page to follow the records (not speed claims:
#: the benchmarks measure speed).
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The web view over records of real runs, in a SQLite file or on a
    real PostgreSQL."""
    base = tmp_path_factory.mktemp("webui")
    records = records_location(request, base)
    ids = record_runs(records)
    with web_server(records=str(records), board=str(base / "board.sqlite3"), token=TOKEN,
                    token_given=True) as url:
        yield {"url": url, "ids": ids, "records": records, "board": base / "board.sqlite3"}


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    tab = browser.new_page()
    tab.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    tab.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                     dialog.dismiss()))
    tab.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
           if msg.type == "error" else None)
    tab.problems = problems
    yield tab
    tab.close()
    assert problems == [], problems


def test_runs_list(page: Any, site: dict[str, Any]) -> None:
    ids = site["ids"]
    page.goto(f"{site['url']}/runs")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 3
    assert [int(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.run)")] == sorted(
        ids.values(), reverse=True)
    failed_row = page.locator(f"#runs tr[data-run='{ids['failed']}']")
    assert failed_row.locator(".outcome").inner_text() == "not_converged"
    assert '"web1", password="***", url="https://***@example.invalid/x"' in (
        failed_row.locator(".args").inner_text())
    assert failed_row.locator("svg.spark rect").count() == 1
    page.select_option("select[name=outcome]", "converged")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"outcome=converged"))
    assert page.locator("#runs tbody tr").count() == 1
    page.click(f"#runs a[href='/runs/{ids['converged']}']")
    page.wait_for_url(f"{site['url']}/runs/{ids['converged']}")
    assert page.locator("h1").inner_text() == f"Run {ids['converged']}: Fetch"


def test_run_page_svg_and_node_click(page: Any, site: dict[str, Any]) -> None:
    rid = site["ids"]["failed"]
    page.goto(f"{site['url']}/runs/{rid}")
    page.wait_for_selector("body[data-graph=ready]")
    nodes = page.locator("#graph svg g.node")
    assert nodes.count() == 3
    assert page.locator("#graph-note").inner_text().startswith("all 3 jobs drawn")
    broken = page.locator("#graph g.node[data-job='Broken']")
    assert "failed" in broken.get_attribute("class")
    assert page.locator("#jobs tr[data-job='Broken'] .status").inner_text() == "failed"
    broken.click()
    page.wait_for_url(f"{site['url']}/runs/{rid}/jobs/Broken")
    assert page.locator("h1").inner_text() == "Broken"
    assert page.locator("#job-status").inner_text() == "failed"


def test_job_page_logs_phases_exception(page: Any, site: dict[str, Any]) -> None:
    rid = site["ids"]["failed"]
    page.goto(f"{site['url']}/runs/{rid}/jobs/Fetch")
    messages = page.locator("#logs tbody tr td:last-child").all_inner_texts()
    assert messages == ["fetching", "fetched into /srv/www"]
    assert page.locator("#timeline rect.phase").count() == 3
    page.goto(f"{site['url']}/runs/{rid}/jobs/Broken")
    assert page.locator("#exception").inner_text() == "RuntimeError: Broken is broken"
    assert "raise RuntimeError" in page.locator("#traceback").inner_text()
    # one warning per Check: check and recheck of each of the two tries
    assert page.locator("#logs tbody tr").count() == 4
    page.click("#job-summary a:text('Site')")
    page.wait_for_url(f"{site['url']}/runs/{rid}/jobs/Site")


def test_hostile_names_and_lines_are_text(page: Any, site: dict[str, Any]) -> None:
    rid = site["ids"]["hostile"]
    page.goto(f"{site['url']}/runs/{rid}")
    page.wait_for_selector("body[data-graph=ready]")
    shown = ANSI.replace("\x1b", "\\x1b")
    names = page.locator("#jobs td.name").all_inner_texts()
    assert HOSTILE in names and shown in names
    assert page.locator("#graph g.node[data-job]").count() == 3
    log_text = page.locator("#logs").inner_text()
    assert HOSTILE in log_text and shown in log_text
    page.goto(f"{site['url']}/runs/{rid}/jobs/{quote(HOSTILE, safe='')}")
    assert page.locator("h1").inner_text() == HOSTILE
    assert page.locator("#exception").inner_text() == f"ValueError: exception {HOSTILE} {shown}"
    for url in (f"/runs/{rid}", f"/runs/{rid}/jobs/{quote(HOSTILE, safe='')}", "/runs"):
        page.goto(site["url"] + url)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.pwned") is None, url
        assert page.locator("img").count() == 0, url
        assert page.locator("script:not([src]):not([type='application/json'])").count() == 0


@contextmanager
def gated_run(site: dict[str, Any], tmp_path: Path, *options: str,
              graph_stored: bool = True) -> Iterator[tuple[Path, int]]:
    """A run of GATED_RUN in another process, recording into the site's
    records: yields ``(gates, run id)`` once the run is recorded as running
    (and its graph stored, with ``graph_stored``); each job waits for a
    file named after it in ``gates``.  After the block the run must have
    ended (every gate opened)."""
    gates = tmp_path / "gates"
    gates.mkdir()
    child = start_python(GATED_RUN, str(site["records"]), str(gates), *options)
    try:
        assert read_line(child) == "ready"

        def started() -> bool:
            with open_store(site["records"]) as store:
                run = store.run("last")
                return run.root == "Root" and run.outcome == "running" and (
                    not graph_stored or store.graph_data(run.id) is not None)
        wait_until(started, what="the child's run in the records")
        with open_store(site["records"]) as store:
            rid = store.resolve("last")
        yield gates, rid
        assert read_line(child) == f"done {rid}"
    finally:
        finish(child)


def test_live_update_from_a_run_in_another_process(
    page: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    with gated_run(site, tmp_path) as (gates, rid):
        page.goto(f"{site['url']}/runs/{rid}")
        assert page.locator("#outcome").inner_text() == "running"
        page.wait_for_selector("body[data-live=open]")
        page.wait_for_selector("body[data-graph=ready]")
        second = "#jobs tr[data-job='Second'] .status"
        assert page.locator(second).inner_text() == "pending"
        node = page.locator("#graph g.node[data-job='Second']")
        assert "pending" in node.get_attribute("class")
        (gates / "Second").touch()
        # (Waiting on selectors: the page's CSP forbids the eval behind
        # Playwright's wait_for_function.)
        page.wait_for_selector("#jobs tr[data-job='Second'] .status.ok")
        page.wait_for_selector("#graph g.node.ok[data-job='Second']")
        page.locator("#logs td", has_text="Second passes").wait_for()
        assert page.locator("[data-count=ok]").inner_text() == "2"
        (gates / "Third").touch()
        (gates / "Root").touch()
        page.wait_for_selector("body[data-live=ended]")
        assert page.locator("#outcome").inner_text() == "converged"
        assert page.locator("#live").inner_text() == "the run has ended"


def test_page_opened_before_the_graph_is_stored_fills_in(
    page: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    with gated_run(site, tmp_path, "--gate-first", graph_stored=False) as (gates, rid):
        with open_store(site["records"]) as store:
            assert store.graph_data(rid) is None  # nothing flushed yet
        page.goto(f"{site['url']}/runs/{rid}")
        assert page.locator("#jobs tbody tr").count() == 0
        assert page.locator("#graph-status").inner_text() == "no graph stored for this run yet"
        page.wait_for_selector("body[data-live=open]")
        (gates / "First").touch()
        page.wait_for_selector("#jobs tr[data-job='First'] .status.ok")
        page.wait_for_selector("body[data-graph=ready]")
        page.wait_for_selector("#graph g.node.ok[data-job='First']")
        for name in ("Second", "Third", "Root"):
            (gates / name).touch()
        page.wait_for_selector("body[data-live=ended]")


def test_job_page_follows_its_job_live(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    with gated_run(site, tmp_path) as (gates, rid):
        page.goto(f"{site['url']}/runs/{rid}/jobs/Second")
        assert page.locator("#job-status").inner_text() == "pending"
        page.wait_for_selector("body[data-live=open]")
        (gates / "Second").touch()
        page.wait_for_selector("#job-status.status.ok")
        page.locator("#logs td", has_text="Second passes").wait_for()
        (gates / "Third").touch()
        (gates / "Root").touch()
        page.wait_for_selector("body[data-live=ended]")


def test_board_post_and_cancel_need_the_token(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['url']}/board")
    assert page.locator("#post-form").count() == 0
    assert "Log in" in page.locator("#post-off").inner_text()
    # Log in as the printed URL does: the token once, then a cookie.
    page.goto(f"{site['url']}/login?token={TOKEN}&next=/board")
    page.wait_for_url(f"{site['url']}/board")
    assert page.locator("#post-form").count() == 1
    page.fill("#post-form input[name=target]", "site.py:Site")
    page.fill("#post-form input[name=args]", '["web9"]')
    page.fill("#post-form input[name=kwargs]", '{"password": "pw", "env": "prod"}')
    page.click("#post-form button[type=submit]")
    notice = page.locator("#notice").inner_text()
    request_id = int(re.fullmatch(r"posted request (\d+)", notice)[1])  # type: ignore[index]
    row = page.locator(f"#requests tr[data-request='{request_id}']")
    assert row.locator(".state").inner_text() == "waiting"
    assert row.locator(".args").inner_text() == '"web9", env="prod", password="***"'
    assert open_board(site["board"]).get(request_id).kwargs["password"] == "pw"
    row.locator(".cancel-form button").click()
    assert page.locator("#notice").inner_text() == f"request {request_id} cancelled"
    assert page.locator(f"#requests tr[data-request='{request_id}'] .state").inner_text() == (
        "cancelled")
    assert open_board(site["board"]).get(request_id).state == "cancelled"
    # Logged out, the page offers nothing and a forged post is refused.
    page.click("header form button")
    page.goto(f"{site['url']}/board")
    assert page.locator("#post-form").count() == 0
    status = page.evaluate(
        "fetch('/board/post', {method: 'POST', body: new URLSearchParams({target: 'x.py:X'})})"
        ".then(r => r.status)")
    assert status == 401
    page.problems.remove(
        "console error: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)")


def test_read_only_board(page: Any, tmp_path: Path) -> None:
    board = tmp_path / "board.sqlite3"
    request_id = open_board(board).post("site.py:Site").id
    with web_server(records=str(tmp_path / "r.sqlite3"), board=str(board), token=TOKEN,
                    token_given=True, read_only=True) as url:
        page.goto(f"{url}/login?token={TOKEN}&next=/board")
        page.wait_for_url(f"{url}/board")
        assert "read-only" in page.locator("#post-off").inner_text()
        assert page.locator("#post-form, .cancel-form").count() == 0
        assert page.locator(f"#requests tr[data-request='{request_id}'] .state").inner_text() == (
            "waiting")
        status = page.evaluate(
            f"fetch('/board/{request_id}/cancel', {{method: 'POST'}}).then(r => r.status)")
        assert status == 403
        page.problems.remove(
            "console error: Failed to load resource: the server responded with a status of 403 "
            "(Forbidden)")
    assert open_board(board).get(request_id).state == "waiting"


def test_big_run_draws_a_capped_picture_first(page: Any, tmp_path: Path) -> None:
    from dojobber import DoJobber, Job

    leaves = [type(f"Leaf{i}", (Job,), {"Check": lambda self, **kw: None}) for i in range(40)]
    broken = type("Broken", (Job,), {"DEPS": leaves[:3], "TRIES": 1,
                                     "Check": lambda self, **kw: 1 / 0})
    root = type("Big", (Job,), {"DEPS": [broken, *leaves[3:]],
                                "Check": lambda self, **kw: None})
    records = tmp_path / "r.sqlite3"
    dojob = DoJobber()
    dojob.configure(root, records=str(records))
    dojob.checknrun()
    with web_server(records=str(records), board=str(tmp_path / "b.sqlite3"),
                    max_nodes=10) as url:
        page.goto(f"{url}/runs/last")
        page.wait_for_selector("body[data-graph=ready]")
        drawn = page.locator("#graph g.node").count()
        assert drawn == 2  # focus on the failure: Broken and the root it blocks
        assert page.locator("#graph-note").inner_text().startswith("showing 2 of 42 jobs")
        page.click("#graph-full")
        page.locator("#graph g.node").nth(41).wait_for()
        assert page.locator("#graph g.node").count() == 42
        assert page.locator("#graph-full").is_hidden()


def test_the_browser_is_debians_chromium(browser: Any) -> None:
    """Launched by path, no downloaded browser: the version the browser
    reports is the one Debian's package says."""
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60)
    assert browser.browser.version in out.stdout
