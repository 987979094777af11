"""The run queue on its two backends: how soon an idle worker starts a posted
request, and how many trivial requests workers get through.

A PostgreSQL server is started for the run (``initdb`` into a temporary
directory, ``pg_ctl`` on a free loopback port, durable settings: fsync on),
next to a SQLite board file in a temporary directory.

- **Post -> start latency**: one idle worker process (``run_worker``, the
  default ``poll`` of 1 s); the poster posts a request at a random moment
  (0.2-1.2 s after the previous one started) and the job's Check writes the
  time it starts.  PostgreSQL wakes the worker by ``NOTIFY``; SQLite's worker
  finds the request at its next poll.
- **Claim throughput**: N trivial requests posted up front, then 1, 2, 4
  and 8 worker processes (``run_worker(once=True)``, records off, a Check
  that returns) released together; requests carried out per second from
  the release until the board is empty.  Each request is a full
  ``checknrun()`` of a one-job graph plus claim and finish.

    python benchmarks/bench_board.py [--samples 25] [--requests 800] [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _readme import write_section

from dojobber import Job
from dojobber.board import open_board
from dojobber.board.worker import WorkerOptions, run_worker
from tests.fakes.postgres import PostgresServer


class Stamp(Job):
    """Writes the time its Check starts to ``out`` (latency samples)."""

    def Check(self, *, out: str, n: int = 0) -> None:
        now = time.time()
        with open(out, "a") as f:
            f.write(f"{n} {now!r}\n")


class Trivial(Job):
    def Check(self, **kw: Any) -> None:
        pass


def _load(target: str) -> type[Job]:
    return Stamp if target.endswith(":Stamp") else Trivial


def _idle_worker(location: str, stop_file: str) -> None:
    board = open_board(location)
    stop = threading.Event()

    def watch() -> None:
        while not os.path.exists(stop_file):
            time.sleep(0.1)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    run_worker(board, WorkerOptions(poll=1.0, lease=30), stop, _load)


def latency(location: str, samples: int, tmp: Path) -> tuple[list[float], list[float]]:
    """(post -> start, post -> claim) in seconds per sample; the second by
    the board's own clock (the server's for PostgreSQL)."""
    out, stop_file = tmp / f"stamps-{os.getpid()}-{id(location)}", tmp / "stop"
    stop_file.unlink(missing_ok=True)
    ctx = multiprocessing.get_context("fork")
    worker = ctx.Process(target=_idle_worker, args=(location, str(stop_file)))
    worker.start()
    board = open_board(location)
    posted: dict[int, float] = {}
    rng = random.Random(7)
    try:
        time.sleep(2.0)  # the worker is up and idle
        for n in range(samples):
            posted[n] = time.time()
            board.post("bench:Stamp", (), {"out": str(out), "n": n})
            deadline = time.monotonic() + 30
            while True:
                lines = out.read_text().splitlines() if out.exists() else []
                if len(lines) > n:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"request {n} was not started within 30 s")
                time.sleep(0.002)
            time.sleep(rng.uniform(0.2, 1.2))
    finally:
        stop_file.write_text("")
        worker.join(timeout=30)
    started = {int(a): float(b) for a, b in (ln.split() for ln in out.read_text().splitlines())}
    claims = [r.claimed_at - r.posted for r in board.requests(limit=samples)
              if r.claimed_at is not None]
    return [started[n] - posted[n] for n in posted], claims


def _drain(location: str, go: Any, counts: Any, index: int) -> None:
    board = open_board(location)
    go.wait()
    counts[index] = run_worker(board, WorkerOptions(once=True, lease=30), None, _load)


def throughput(location: str, workers: int, requests: int) -> float:
    board = open_board(location)
    for i in range(requests):
        board.post("bench:Trivial", (), {"i": i})
    board.close()
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    counts = ctx.Array("i", workers)
    procs = [ctx.Process(target=_drain, args=(location, go, counts, i)) for i in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # all started and connected
    start = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    assert sum(counts) == requests, (sum(counts), requests)
    return requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--write", metavar="README", help="Update the Board section there.")
    opts = parser.parse_args()
    load = os.getloadavg()
    with PostgresServer(fast=False) as server, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        lat = {
            "PostgreSQL (NOTIFY)": latency(server.create_database("latency"), opts.samples, tmp),
            "SQLite (poll 1 s)": latency(str(tmp / "latency.sqlite3"), opts.samples, tmp),
        }
        rates: dict[tuple[str, int], float] = {}
        for workers in (1, 2, 4, 8):
            for name in ("PostgreSQL", "SQLite"):
                where = (server.create_database(f"tp{workers}") if name == "PostgreSQL"
                         else str(tmp / f"tp{workers}.sqlite3"))
                rates[name, workers] = throughput(where, workers, opts.requests)
                print(f"{name} {workers} workers: {rates[name, workers]:.0f}/s", flush=True)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared with other work; load "
        f"average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end); PostgreSQL "
        f"server on loopback with fsync on; `python benchmarks/bench_board.py --samples "
        f"{opts.samples} --requests {opts.requests}`.",
        "",
        "Post -> start latency, one idle worker:",
        "",
        "| board | post -> start median ms | p90 ms | max ms | post -> claim median ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (values, claims) in lat.items():
        ms = sorted(v * 1000 for v in values)
        lines.append(f"| {name} | {statistics.median(ms):.1f} | "
                     f"{ms[int(len(ms) * 0.9) - 1]:.1f} | {ms[-1]:.1f} | "
                     f"{statistics.median(claims) * 1000:.1f} |")
    lines += [
        "",
        f"Claim throughput, {opts.requests} trivial requests (claim + one-job checknrun + "
        "finish each), requests per second:",
        "",
        "| workers | PostgreSQL | SQLite | PostgreSQL / SQLite |",
        "|---:|---:|---:|---:|",
    ]
    for workers in (1, 2, 4, 8):
        pg, lite = rates["PostgreSQL", workers], rates["SQLite", workers]
        lines.append(f"| {workers} | {pg:.0f} | {lite:.0f} | {pg / lite:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if opts.write:
        write_section(Path(opts.write), "board", "Board", text,
                      intro="The run queue on SQLite and PostgreSQL: see the docstring of "
                      "`benchmarks/bench_board.py`.")


if __name__ == "__main__":
    main()
