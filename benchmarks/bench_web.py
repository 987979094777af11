"""The web view's speed: the runs list over 10 000 runs, the page of a
5 000-job run in Chromium, and live latency from another process.

- **runs list**: a records database with 10 000 runs (40 real runs of
  small graphs, copied in SQL to 10 000 with spread roots, arguments and
  outcomes); the time of ``GET /runs`` (HTML) and ``/api/runs`` for the first
  page, a filtered page and page 200, measured by the client over loopback
  (so an upper bound on the server's time), median and p95 of N requests.
- **big run page**: a real 5 000-job run (a layered graph with failures)
  opened in Debian's Chromium (Playwright, headless); first contentful
  paint and the moment the picture is in the page and clickable (the
  ``dojobber-graph-ready`` mark), both from navigation start.  Cold: a
  fresh server (the picture is laid out by ``dot``); warm: the same page
  again (the picture is kept).  The whole graph on demand is timed once.
- **live latency**: a child process converges a chain of jobs (each takes
  0.1 to 0.4 s) into the records while the run page is open; for each job, the
  time from its Check returning in the child (wall clock) to its row
  turning ``ok`` in the page (a MutationObserver's Date.now()).  Once with
  the records listener's default ``flush_interval`` (0.5 s, what
  ``dojobber run`` uses), once with the 1 s it was before, and once with
  0.1 s; on SQLite, then on a PostgreSQL server started for the run
  (``initdb`` in a temporary directory, fsync on; ``--no-postgres`` skips
  it).

    python benchmarks/bench_web.py [--requests 30] [--loads 5] [--jobs 40]
        [--only list|page|live] [--no-postgres] [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _readme import write_section

from dojobber import DoJobber, Job
from dojobber.records import RecordStore, open_store
from tests.fakes.postgres import PostgresServer
from tests.fakes.web import CHROMIUM, CHROMIUM_ARGS, web_server

ROOT = Path(__file__).resolve().parents[1]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# ----------------------------------------------------------------------
def make_many_runs(path: Path, total: int) -> None:
    """40 real runs of small graphs, then copies of them up to ``total``."""
    roots = []
    for r in range(8):
        leaf = type(f"Leaf{r}", (Job,), {"Check": lambda self, **kw: None})
        bad = type(f"Flaky{r}", (Job,), {"DEPS": [leaf], "TRIES": 1,
                                         "Check": lambda self, fail=False, **kw: (
                                             (_ for _ in ()).throw(RuntimeError("flaky"))
                                             if fail else None)})
        roots.append(type(f"Service{r}", (Job,), {"DEPS": [bad],
                                                  "Check": lambda self, **kw: None}))
    for i in range(40):
        dojob = DoJobber()
        dojob.configure(roots[i % 8], records=str(path))
        dojob.set_args(host=f"web{i % 5}", fail=i % 3 == 0)
        dojob.checknrun()
    db = sqlite3.connect(path)
    cols = [r[1] for r in db.execute("PRAGMA table_info(runs)") if r[1] != "id"]
    names = ", ".join(cols)
    have = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    with db:
        while have < total:
            step = min(have, total - have)
            db.execute(f"INSERT INTO runs ({names}) SELECT {names} FROM runs ORDER BY id LIMIT ?",
                       (step,))
            have += step
    db.close()


def time_get(url: str, count: int) -> tuple[float, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as reply:
            reply.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times), p95(times)


def bench_runs_list(tmp: Path, count: int) -> list[str]:
    path = tmp / "many.sqlite3"
    make_many_runs(path, 10_000)
    rows = []
    with web_server(records=str(path), board=str(tmp / "b.sqlite3")) as url:
        time_get(f"{url}/runs", 3)  # warm up
        for label, page in [
            ("/runs (HTML, newest 50)", "/runs"),
            ("/api/runs (JSON, newest 50)", "/api/runs"),
            ("/runs?root=Service3&outcome=not_converged (filtered)",
             "/runs?root=Service3&outcome=not_converged"),
            ("/runs?page=200 (the oldest)", "/runs?page=200"),
            ("/api/runs?per_page=500", "/api/runs?per_page=500"),
        ]:
            med, high = time_get(url + page, count)
            rows.append(f"| `{label}` | {med * 1000:.1f} | {high * 1000:.1f} |")
    return rows


# ----------------------------------------------------------------------
def make_big_run(path: Path, jobs: int) -> int:
    """A layered graph of ``jobs`` jobs (each depends on two of the layer
    below); three jobs fail, blocking what needs them."""
    width = 100
    layers: list[list[type[Job]]] = []
    made = 0
    while made < jobs - 1:
        below = layers[-1] if layers else []
        layer = []
        for i in range(min(width, jobs - 1 - made)):
            deps = [below[i % len(below)], below[(i * 7 + 3) % len(below)]] if below else []
            fail = made in (150, 1777, 3210)
            check = (lambda self, **kw: 1 / 0) if fail else (lambda self, **kw: None)
            layer.append(type(f"L{len(layers)}J{i}", (Job,),
                              {"DEPS": list(dict.fromkeys(deps)), "Check": check, "TRIES": 1}))
            made += 1
        layers.append(layer)
    root = type("BigRoot", (Job,), {"DEPS": layers[-1], "Check": lambda self, **kw: None})
    dojob = DoJobber()
    dojob.configure(root, records=str(path))
    dojob.checknrun()
    with RecordStore(path) as store:
        return store.resolve("last")


def open_page(context: Any, url: str) -> tuple[float, float]:
    page = context.new_page()
    page.goto(url, wait_until="commit")
    page.wait_for_selector("body[data-graph=ready]", timeout=120_000)
    fcp = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0].startTime")
    ready = page.evaluate("performance.getEntriesByName('dojobber-graph-ready')[0].startTime")
    page.close()
    return fcp / 1000, ready / 1000


def bench_big_page(tmp: Path, loads: int, playwright: Any) -> list[str]:
    path = tmp / "big.sqlite3"
    rid = make_big_run(path, 5000)
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    whole = 0.0
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900})
    try:
        for i in range(loads):
            with web_server(records=str(path), board=str(tmp / "b.sqlite3")) as url:
                cold.append(open_page(context, f"{url}/runs/{rid}"))
                warm.append(open_page(context, f"{url}/runs/{rid}"))
                if i == 0:
                    start = time.perf_counter()
                    with urllib.request.urlopen(f"{url}/runs/{rid}/graph.svg?all=1",
                                                timeout=600) as reply:
                        size = len(reply.read())
                    whole = time.perf_counter() - start
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
    rows = []
    for label, values in (("cold (new server, picture laid out)", cold),
                          ("warm (picture kept)", warm)):
        fcp = [v[0] for v in values]
        ready = [v[1] for v in values]
        rows.append(f"| {label} | {statistics.median(fcp):.2f} | {max(fcp):.2f} | "
                    f"{statistics.median(ready):.2f} | {max(ready):.2f} |")
    rows.append(f"\nThe whole 5 000-job picture on demand (`?all=1`, `dot` with dojobber's "
                f"big-graph settings): {whole:.1f} s, {size / 1e6:.1f} MB of SVG.")
    return rows


# ----------------------------------------------------------------------
CHAIN = r"""
import sys, time, random, logging
from dojobber import DoJobber, Job
from dojobber.records import RecordsListener

records, jobs, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
random.seed(7)

def step(name, deps):
    def check(self, **kw):
        if not self.global_storage.get("go"):
            sys.stdin.readline()  # the page is open
            self.global_storage["go"] = True
        time.sleep(random.uniform(0.1, 0.4))
        print(name, time.time(), flush=True)
    return type(name, (Job,), {"DEPS": deps, "Check": check})

prev = []
for i in range(jobs):
    job = step(f"Step{i:03d}", prev)
    prev = [job]
listener = RecordsListener(records, flush_interval=interval)
dojob = DoJobber()
dojob.configure(prev[0], listeners=[listener], workers=2)
dojob.checknrun()
print("done", flush=True)
"""

OBSERVE = """() => {
  window.seen = {};
  const body = document.querySelector('#jobs tbody');
  new MutationObserver(() => {
    for (const tr of body.querySelectorAll('tr[data-job]')) {
      const name = tr.dataset.job;
      if (!(name in window.seen) && tr.querySelector('.status').textContent === 'ok') {
        window.seen[name] = Date.now() / 1000;
      }
    }
  }).observe(body, {subtree: true, childList: true, characterData: true});
}"""


def bench_live(tmp: Path, jobs: int, interval: float, playwright: Any,
               postgres: Any = None) -> list[float]:
    """Latencies of one chain run; records in SQLite, or in a new database
    on ``postgres`` (a :class:`~tests.fakes.postgres.PostgresServer`)."""
    path = (postgres.create_database() if postgres is not None
            else str(tmp / f"live-{interval}.sqlite3"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHAIN, path, str(jobs), str(interval)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdin is not None and child.stdout is not None
    finished: dict[str, float] = {}
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        with web_server(records=path, board=str(tmp / "b.sqlite3")) as url:
            deadline = time.monotonic() + 60
            while True:  # the run is in the records (its graph comes with the first flush)
                try:
                    with open_store(path) as store:
                        rid = store.resolve("last")
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the child's run never showed up in the records")
                time.sleep(0.05)
            page = context.new_page()
            page.goto(f"{url}/runs/{rid}")
            page.wait_for_selector("body[data-live=open]")
            page.evaluate(OBSERVE)
            child.stdin.write("go\n")
            child.stdin.flush()
            for line in child.stdout:
                if line.startswith("done"):
                    break
                name, stamp = line.split()
                finished[name] = float(stamp)
            page.wait_for_selector("body[data-live=ended]", timeout=60_000)
            seen = page.evaluate("window.seen")
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
        child.kill()
        child.wait()
    return [seen[name] - stamp for name, stamp in finished.items() if name in seen]


# ----------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=40, help="jobs in the live chain")
    parser.add_argument("--only", choices=["list", "page", "live"], action="append")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false",
                        help="live latency on SQLite only (else also on a PostgreSQL server "
                        "started for the run, fsync on)")
    parser.add_argument("--write", metavar="README", help="Update the Web view section there.")
    opts = parser.parse_args()
    from playwright.sync_api import sync_playwright

    only = set(opts.only or ["list", "page", "live"])
    out = [
        f"Measured {time.strftime('%Y-%m-%d')} on CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the start, {{end}} at the end), "
        f"{subprocess.run([CHROMIUM, '--version'], capture_output=True, text=True).stdout.strip()}"
        f"; `python benchmarks/bench_web.py --requests {opts.requests} --loads {opts.loads} "
        f"--jobs {opts.jobs}`.",
    ]
    with tempfile.TemporaryDirectory() as name, sync_playwright() as playwright:
        tmp = Path(name)
        if "list" in only:
            out += ["", f"Runs list, 10 000 runs recorded ({opts.requests} requests each, "
                    "client-side over loopback; target: under 300 ms server time):", "",
                    "| request | median ms | p95 ms |", "|---|---:|---:|",
                    *bench_runs_list(tmp, opts.requests)]
        if "page" in only:
            out += ["", f"Run page of a 5 000-job run in Chromium ({opts.loads} loads each; "
                    "seconds from navigation start; target: under 2 s):", "",
                    "| load | first paint median | max | picture usable median | max |",
                    "|---|---:|---:|---:|---:|", *bench_big_page(tmp, opts.loads, playwright)]
        if "live" in only:
            out += ["", f"Live latency: a job's Check returning in another process to its row "
                    f"changing in the open page ({opts.jobs} jobs; target: p95 under 1 s):", "",
                    "| records | flush_interval | median s | p95 s | max s |",
                    "|---|---|---:|---:|---:|"]
            with contextlib.ExitStack() as servers:
                postgres = None
                if opts.postgres:
                    postgres = servers.enter_context(PostgresServer(fast=False))
                for backend, server in (("SQLite", None), ("PostgreSQL", postgres)):
                    if backend == "PostgreSQL" and server is None:
                        continue
                    for interval in (0.5, 1.0, 0.1):
                        lat = bench_live(tmp, opts.jobs, interval, playwright, server)
                        note = " (default)" if interval == 0.5 else ""
                        out.append(f"| {backend} | {interval:g} s{note} | "
                                   f"{statistics.median(lat):.2f} | {p95(lat):.2f} | "
                                   f"{max(lat):.2f} |")
    text = "\n".join(out).replace("{end}", f"{os.getloadavg()[0]:.1f}", 1)
    print(text)
    if opts.write:
        write_section(Path(opts.write), "web", "Web view", text)


if __name__ == "__main__":
    main()
