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

    .venv/bin/python benchmarks/bench_timeout.py [--jobs 20000] [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", type=Path, help="put the results in this README")
    args = parser.parse_args()
    load = os.getloadavg()[0]

    from dojobber import DoJobber

    arrangements = {
        "none": (make_graph(args.jobs, None), 1),
        "every job": (make_graph(args.jobs, 60.0), 1),
        "none, workers=4": (make_graph(args.jobs, None), 4),
        "every job, workers=4": (make_graph(args.jobs, 60.0), 4),
    }
    #: What each arrangement is compared with (same engine, no TIMEOUT).
    baseline = {name: "none, workers=4" if "workers=4" in name else "none"
                for name in arrangements}
    runners = {}
    for name, (root, workers) in arrangements.items():
        dj = DoJobber()
        dj.configure(root, workers=workers)
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
        base = times[baseline[name]]
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
