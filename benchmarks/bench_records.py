"""Cost of run records: a 20 000-job run with ``records=`` vs without.

Each sample is ``configure()`` + ``checknrun()`` of a fresh graph (class
creation not timed) of trivial jobs (Check returns at once), which is the
worst case for recording: the engine does almost nothing per job, so the
per-job cost of recording shows in full.  Samples alternate between the
variants in one process; medians are compared (target: records <= 1.5x).

Variants: no listener at all; ``records=`` (one row per job, batched);
and both again with every job logging one INFO line (stored by the records
listener, dropped by the default WARNING root logger without it).

    python benchmarks/bench_records.py [--jobs 20000] [--runs 7] [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _readme import write_section

from dojobber import DoJobber, Job, Listener

log = logging.getLogger("bench.records")


def _quiet(self: Job) -> None:
    pass


def _chatty(self: Job) -> None:
    log.info("checked %s", type(self).__name__)


class Counter(Listener):
    """The least a listener can do per job: count job_finished events."""

    def __init__(self) -> None:
        self.count = 0

    def job_finished(self, result: object) -> None:
        self.count += 1


class BatchCounter(Listener):
    """The same with batches (jobs_finished), as the records listener takes them."""

    def __init__(self) -> None:
        self.count = 0

    def jobs_finished(self, results: list[object]) -> None:
        self.count += len(results)


def make_graph(jobs: int, check: Callable[[Job], None]) -> type[Job]:
    leaves = [type(f"J{i}", (Job,), {"Check": check}) for i in range(jobs - 1)]
    return type("Root", (Job,), {"DEPS": leaves, "Check": check})


def sample(jobs: int, check: Callable[[Job], None], records: str | None) -> float:
    root = make_graph(jobs, check)
    dj = DoJobber()
    start = time.perf_counter()
    if records == "counter":
        dj.configure(root, listeners=[Counter()])
    elif records == "batches":
        dj.configure(root, listeners=[BatchCounter()])
    else:
        dj.configure(root, records=records)
    result = dj.checknrun()
    elapsed = time.perf_counter() - start
    assert result.success()
    if dj.records is not None:
        dj.records.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", metavar="README", help="Update the Records section there.")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "records.sqlite3")
        variants = {
            "no records": (_quiet, None),
            "a listener counting jobs (job_finished: a call per job)": (_quiet, "counter"),
            "a listener counting jobs (jobs_finished: batches)": (_quiet, "batches"),
            "records": (_quiet, db),
            "no records, 1 log line per job": (_chatty, None),
            "records, 1 log line per job": (_chatty, db),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        sample(1000, _quiet, db)  # warm up (and create the database)
        for _ in range(opts.runs):
            for name, (check, records) in variants.items():
                times[name].append(sample(opts.jobs, check, records))
        size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
    med = {name: statistics.median(values) for name, values in times.items()}
    ratio = med["records"] / med["no records"]
    ratio_log = med["records, 1 log line per job"] / med["no records, 1 log line per job"]
    events = med["a listener counting jobs (jobs_finished: batches)"] / med["no records"]
    per_job = med["a listener counting jobs (job_finished: a call per job)"] / med["no records"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared); median of {opts.runs} "
        f"alternating runs in one process; `python benchmarks/bench_records.py --jobs "
        f"{opts.jobs} --runs {opts.runs}`.",
        "",
        "| variant | median s | µs per job |",
        "|---|---:|---:|",
    ]
    for name, value in med.items():
        lines.append(f"| {name} | {value:.3f} | {value / opts.jobs * 1e6:.1f} |")
    lines += [
        "",
        f"- Records cost **{ratio:.2f}x** the run without them (target <= 1.5x); "
        f"with a log line per job, {ratio_log:.2f}x.",
        f"- Of that, {events:.2f}x is the engine handing finished jobs to a listener in "
        f"batches, as records take them (a call per job instead: {per_job:.2f}x).",
        f"- The database held {opts.runs * 2 + 2} runs ({size / 1e6:.1f} MB with its WAL).",
    ]
    text = "\n".join(lines)
    print(text)
    if opts.write:
        _write(Path(opts.write), text)


def _write(readme: Path, text: str) -> None:
    write_section(
        readme, "records", "Records", text,
        intro="Cost of run records (`configure(records=...)`, on by default in the CLI) "
        "for trivial jobs, the worst case: see the docstring of `benchmarks/bench_records.py`.",
    )


if __name__ == "__main__":
    main()
