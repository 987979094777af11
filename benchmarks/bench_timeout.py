"""What per-job TIMEOUT costs when no attempt times out.

Wide graphs (one root over N-1 leaves whose Check passes at once) are run
with ``checknrun()`` in four arrangements, alternately, ``--repeat``
times each; the figures are medians, and each ratio is the median of the
per-round ratios against the graph without any TIMEOUT (so that the
machine's drift between rounds cancels out):

* ``none``: no job has a TIMEOUT (the engine checks once per run);
* ``every job``: every job has ``TIMEOUT = 60`` (inline engine: the loop
  runs on a thread of its own, the caller's thread watches the deadlines);
* ``none, workers=4`` / ``every job, workers=4``: the same on the thread
  engine (compared with each other).

``--instructions`` counts instructions instead (valgrind's callgrind, all
threads together): per job, a child that makes the graph and runs
``configure()`` + ``checknrun()`` minus one that only makes the graph, for
each arrangement.  The count does not drift with the machine's load, so
one child each is enough.

    .venv/bin/python benchmarks/bench_timeout.py [--jobs 20000] [--instructions]
        [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._readme import write_section


def make_graph(n: int, timeout: float | None) -> Any:
    import dojobber

    def check(self: Any) -> bool:
        return True

    leaves = [type(f"leaf{i}", (dojobber.Job,), {"Check": check, "TIMEOUT": timeout})
              for i in range(n - 1)]
    return type("root", (dojobber.Job,), {"DEPS": leaves, "Check": check,
                                          "TIMEOUT": timeout})


#: The arrangements: name -> (TIMEOUT of every job, workers).
ARRANGEMENTS: dict[str, tuple[float | None, int]] = {
    "none": (None, 1),
    "every job": (60.0, 1),
    "none, workers=4": (None, 4),
    "every job, workers=4": (60.0, 4),
}
#: What each arrangement is compared with (same engine, no TIMEOUT).
BASELINE = {name: "none, workers=4" if "workers=4" in name else "none" for name in ARRANGEMENTS}


def child(name: str, jobs: int, run: bool) -> None:
    """Make the graph of arrangement ``name`` and (``run``) run it once."""
    from dojobber import DoJobber

    timeout, workers = ARRANGEMENTS[name]
    root = make_graph(jobs, timeout)
    if run:
        dj = DoJobber()
        dj.configure(root, workers=workers)
        assert dj.checknrun().success()


def instructions(name: str, jobs: int, run: bool) -> int:
    """Instructions callgrind counts in a child (see :func:`child`)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         os.path.realpath(sys.executable), "-S", str(Path(__file__).resolve()),
         "--child", name, str(jobs), "1" if run else "0"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True, text=True, check=True,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise SystemExit(f"no instruction count from valgrind:\n{out.stderr}")


def count_instructions(jobs: int) -> str:
    per_job = {name: (instructions(name, jobs, True) - instructions(name, jobs, False)) / jobs
               for name in ARRANGEMENTS}
    rows = ["| TIMEOUT on | instructions per job | / same engine without TIMEOUT |",
            "|---|---|---|"]
    for name, count in per_job.items():
        rows.append(f"| {name} | {count:,.0f} | {count / per_job[BASELINE[name]]:.3f} |")
    return (f"wide {jobs}, every job passes at its first Check, nothing times out;"
            f" instructions counted by callgrind (configure() + checknrun(), all threads);"
            f" Python {platform.python_version()}\n\n" + "\n".join(rows) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions (valgrind) instead of timing")
    parser.add_argument("--child", nargs=3, metavar=("ARRANGEMENT", "JOBS", "RUN"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help="put the results in this README")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2] == "1")
        return 0
    if args.instructions:
        body = count_instructions(args.jobs)
        print(body)
        if args.write:
            write_section(
                args.write, "timeout-instructions", "Per-job TIMEOUT: instructions", body,
                intro="`python benchmarks/bench_timeout.py --instructions --write"
                      " benchmarks/README.md`: the same, counted in instructions.",
            )
        return 0
    load = os.getloadavg()[0]

    from dojobber import DoJobber

    runners = {}
    for name, (timeout, workers) in ARRANGEMENTS.items():
        dj = DoJobber()
        dj.configure(make_graph(args.jobs, timeout), workers=workers)
        dj.checknrun()  # warm
        runners[name] = dj

    def once(dj: DoJobber) -> float:
        gc.collect()
        start = time.perf_counter()
        result = dj.checknrun()
        took = time.perf_counter() - start
        assert result.success()
        return took

    times: dict[str, list[float]] = {name: [] for name in runners}
    for k in range(args.repeat):
        order = list(runners) if k % 2 == 0 else list(reversed(runners))
        for name in order:
            times[name].append(once(runners[name]))
    rows = ["| TIMEOUT on | per job (median) | / same engine without TIMEOUT (median of ratios) |",
            "|---|---|---|"]
    for name, values in times.items():
        base = times[BASELINE[name]]
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        per_job = statistics.median(values) / args.jobs * 1e6
        rows.append(f"| {name} | {per_job:.1f} µs | {ratio:.3f} |")
    body = (
        f"wide {args.jobs}, every job passes at its first Check, nothing times out;"
        f" {args.repeat} rounds; Python {platform.python_version()};"
        f" load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n\n"
        + "\n".join(rows) + "\n"
    )
    print(body)
    if args.write:
        write_section(
            args.write, "timeout", "Per-job TIMEOUT",
            body,
            intro="`python benchmarks/bench_timeout.py --write benchmarks/README.md`: what"
                  " per-job TIMEOUT costs when no attempt times out.",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
