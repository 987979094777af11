"""Engine overhead: configure() + checknrun() on three graph shapes.

Every job fails its first Check, Runs, and passes its recheck, so each job
costs one full attempt.  Shapes:

* wide N     one root with N leaves
* chain N    N jobs, each depending on the previous one
* layered N  layers of 50 jobs, each with 3 dependencies in the layer below:
             the job at its own position and two random others (fixed seed)

Each measurement runs in a fresh subprocess (``--child``) so that
implementations do not share a heap; the parent prints (and with
``--write`` stores) medians.  ``--upstream-python`` names the interpreter of
a venv with upstream DoJobber 0.6.3, for a side-by-side table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _readme import write_section  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent

# (shape, n, compare with upstream?)
CASES = [
    ("wide", 20_000, True),
    ("layered", 4_000, True),
    ("chain", 1_200, True),
    ("wide", 10_000, False),
    ("wide", 100_000, False),
    ("layered", 40_000, False),
    ("chain", 12_000, False),
    ("chain", 100_000, False),
]


# --- child side: runs with whichever dojobber the interpreter imports -----
def make_graph(shape: str, n: int) -> Any:
    import dojobber

    def check(self: Any, *args: Any, **kwargs: Any) -> bool:
        if "ran" not in self.storage:
            raise RuntimeError("not yet")
        return True

    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        self.storage["ran"] = True

    def job(name: str, deps: list[Any]) -> Any:
        return type(name, (dojobber.Job,), {"DEPS": deps, "Check": check, "Run": run})

    if shape == "wide":
        return job("root", [job(f"leaf{i}", []) for i in range(n - 1)])
    if shape == "chain":
        prev = job("c0", [])
        for i in range(1, n):
            prev = job(f"c{i}", [prev])
        return prev
    if shape == "layered":
        rng = random.Random(1234)
        below = [job(f"l0_{i}", []) for i in range(50)]
        made = 50
        layer = 1
        while made < n - 1:
            width = min(50, n - 1 - made)
            # job i depends on job i below (so every job is reachable) and on
            # two other random jobs of the layer below
            current = []
            for i in range(width):
                own = below[i % len(below)]
                others = rng.sample([b for b in below if b is not own], 2)
                current.append(job(f"l{layer}_{i}", [own, *others]))
            made += width
            below = current
            layer += 1
        return job("root", below)
    raise SystemExit(f"unknown shape {shape}")


def child(shape: str, n: int, repeat: int) -> None:
    import dojobber

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * n + 1000))  # upstream recurses
    times = []
    for _ in range(repeat):
        root = make_graph(shape, n)
        start = time.perf_counter()
        dojob = dojobber.DoJobber()
        dojob.configure(root, default_retry_delay=0)
        dojob.checknrun()
        times.append(time.perf_counter() - start)
        assert dojob.success(), "benchmark graph did not converge"
        assert len(dojob.nodestatus) == n, (len(dojob.nodestatus), n)
        del dojob, root
    print(json.dumps({"times": times}))


# --- parent side -----------------------------------------------------------
def measure(python: str, shape: str, n: int, repeat: int) -> float:
    python = os.path.abspath(python)  # not resolve(): a venv's python is a symlink
    out = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", shape, str(n), str(repeat)],
        capture_output=True, text=True, cwd="/", timeout=3600,
    )
    if out.returncode:
        raise SystemExit(f"{python} {shape} {n} failed:\n{out.stderr}")
    return statistics.median(json.loads(out.stdout.splitlines()[-1])["times"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("SHAPE", "N", "REPEAT"))
    parser.add_argument("--upstream-python", help="interpreter with dojobber 0.6.3")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--upstream-repeat", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this Markdown file's table")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0

    rows = []
    ours: dict[tuple[str, int], float] = {}
    for shape, n, compare in CASES:
        t = measure(sys.executable, shape, n, args.repeat)
        ours[(shape, n)] = t
        up = None
        if compare and args.upstream_python:
            up = measure(args.upstream_python, shape, n, args.upstream_repeat)
        rows.append((shape, n, t, up))
        print(f"{shape:8} {n:>7}  ours {t * 1e3:9.1f} ms  {t / n * 1e6:6.2f} us/job"
              + (f"  upstream {up * 1e3:10.1f} ms  speed-up {up / t:7.1f}x" if up else ""),
              flush=True)

    table = [
        "| shape | jobs | dojobber (ms) | µs/job | upstream 0.6.3 (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, n, t, up in rows:
        table.append(
            f"| {shape} | {n:,} | {t * 1e3:.1f} | {t / n * 1e6:.2f} | "
            + (f"{up * 1e3:,.0f} | {up / t:,.0f}x |" if up else "- | - |")
        )
    scale = [
        f"- {shape}: {small:,} → {big:,} jobs costs "
        f"{ours[(shape, big)] / ours[(shape, small)]:.1f}x the time"
        for shape, small, big in (("wide", 10_000, 100_000), ("layered", 4_000, 40_000),
                                  ("chain", 1_200, 12_000))
    ]
    text = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}; median of {args.repeat} runs "
        f"(upstream: {args.upstream_repeat}), each in a fresh process; "
        "configure() + checknrun(), class creation not timed.",
        "",
        *table,
        "",
        "Scaling (10x the jobs):",
        "",
        *scale,
    ])
    print(text)
    if args.write:
        write_section(args.write, "engine", "Engine", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
