"""Cost of run records on PostgreSQL: a 20 000-job run with ``records=URL``
against records off and against records in a SQLite file.

The same samples as ``bench_records.py`` (``configure()`` + ``checknrun()``
of a fresh graph of trivial jobs, the worst case for recording), alternating
between the variants in one process; medians compared (target: PostgreSQL
<= 2x records off, SQLite <= 1.5x).  The server is started for the run
(``initdb`` + ``pg_ctl`` on a free loopback port) with durable settings
(fsync on, synchronous commit).

    python benchmarks/bench_records_postgres.py [--jobs 20000] [--runs 5] \
        [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _readme import write_section
from bench_records import _quiet, sample

from tests.fakes.postgres import PostgresServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", metavar="README", help="Update the section there.")
    opts = parser.parse_args()
    load = os.getloadavg()
    with PostgresServer(fast=False) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.create_database("records")
        variants: dict[str, str | None] = {
            "no records": None,
            "records in SQLite": os.path.join(tmp, "records.sqlite3"),
            "records in PostgreSQL": url,
        }
        for where in variants.values():
            if where is not None:
                sample(1000, _quiet, where)  # warm up, create the tables
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(opts.runs):
            for name, where in variants.items():
                times[name].append(sample(opts.jobs, _quiet, where))
    med = {name: statistics.median(values) for name, values in times.items()}
    base = med["no records"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared with other work; load average "
        f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end); median of "
        f"{opts.runs} alternating runs in one process; PostgreSQL on loopback, fsync on; "
        f"`python benchmarks/bench_records_postgres.py --jobs {opts.jobs} --runs {opts.runs}`.",
        "",
        "| variant | median s | µs per job | against no records |",
        "|---|---:|---:|---:|",
    ]
    for name, value in med.items():
        lines.append(f"| {name} | {value:.3f} | {value / opts.jobs * 1e6:.1f} | "
                     f"{value / base:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if opts.write:
        write_section(Path(opts.write), "records-postgres", "Records on PostgreSQL", text,
                      intro="Run records written to a PostgreSQL server: see the docstring "
                      "of `benchmarks/bench_records_postgres.py`.")


if __name__ == "__main__":
    main()
