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
a venv with upstream DoJobber 0.6.3, for a side-by-side table.  Compared
figures (ours against upstream, a small graph against one 10x as big) are
measured in ``--upstream-repeat`` rounds, both sides back to back in each,
and the ratio is the median of the rounds' ratios: this shared machine's
speed drifts by several percent within a minute.  Samples are timed right
after their graph's classes are made, as in a script; the scaling pairs
first push those classes out of the per-core caches (``_cool_caches``),
which would otherwise favour the small graph (the chain 1 200 case runs
~15% faster from the cache) and make the ratio measure the cache.

``--ab OLD NEW`` compares two source trees instead (for example main
against a change: ``git worktree add /tmp/old main``): each round runs a
fresh child on each tree, alternating which goes first, and the figure is
the median of the per-round ratios NEW / OLD, for wide 20 000 and layered
4 000 unless ``--case SHAPE:N`` names others.  The children run with
``python -S`` and ``PYTHONPATH=TREE``, so each imports its own tree (the
core needs nothing outside the standard library).

``--ab OLD NEW --instructions`` counts instructions instead of timing,
with valgrind's callgrind: per job, a child that makes the graph and runs
``configure()`` + ``checknrun()`` minus one that only makes the graph.
The count does not drift with the machine's load (one run each is
enough), though it weighs every instruction alike, cache misses not at all.
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
#: (shape, small, big): 10x the jobs should cost at most 12x the time.
SCALING = [("wide", 10_000, 100_000), ("layered", 4_000, 40_000), ("chain", 1_200, 12_000)]


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


def child(shape: str, n: int, repeat: int, cool: bool) -> None:
    """Time ``repeat`` runs; ``repeat`` 0: make the graph and run it once,
    untimed, and ``repeat`` -1: only make the graph (for --instructions)."""
    import dojobber

    if repeat <= 0:
        root = make_graph(shape, n)
        if repeat == 0:
            dojob = dojobber.DoJobber()
            dojob.configure(root, default_retry_delay=0)
            dojob.checknrun()
            assert dojob.success(), "benchmark graph did not converge"
        return

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * n + 1000))  # upstream recurses
    times = []
    for _ in range(repeat):
        root = make_graph(shape, n)
        if cool:
            _cool_caches()
        start = time.perf_counter()
        dojob = dojobber.DoJobber()
        dojob.configure(root, default_retry_delay=0)
        dojob.checknrun()
        times.append(time.perf_counter() - start)
        assert dojob.success(), "benchmark graph did not converge"
        assert len(dojob.nodestatus) == n, (len(dojob.nodestatus), n)
        del dojob, root
    print(json.dumps({"times": times}))


def _cool_caches() -> None:
    """Write 32 MiB, more than this machine's per-core caches and its TLBs
    cover, so that the graph's classes, just made, are no longer in them.
    For the scaling pairs: otherwise a small graph is timed from the cache
    and a 10x bigger one is not, and the ratio measures the cache rather
    than the engine."""
    junk = bytearray(b"\x01") * (32 << 20)
    del junk


# --- parent side -----------------------------------------------------------
def measure(python: str, shape: str, n: int, repeat: int, cool: bool = False,
            tree: str | None = None) -> float:
    python = os.path.abspath(python)  # not resolve(): a venv's python is a symlink
    env = None
    if tree is not None:  # that tree's dojobber, whatever is installed
        env = {**os.environ, "PYTHONPATH": f"{os.path.abspath(tree)}{os.pathsep}{HERE}"}
    out = subprocess.run(
        [python, *(["-S"] if tree is not None else []), str(Path(__file__).resolve()),
         "--child", shape, str(n), str(repeat), *(["--cool"] if cool else [])],
        capture_output=True, text=True, cwd="/", timeout=3600, env=env,
    )
    if out.returncode:
        raise SystemExit(f"{python} {shape} {n} failed:\n{out.stderr}")
    return statistics.median(json.loads(out.stdout.splitlines()[-1])["times"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("SHAPE", "N", "REPEAT"))
    parser.add_argument("--cool", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--upstream-python", help="interpreter with dojobber 0.6.3")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--upstream-repeat", type=int, default=3,
                        help="rounds for compared figures (upstream runs once a round)")
    parser.add_argument("--write", type=Path, help="update this Markdown file's table")
    parser.add_argument("--ab", nargs=2, metavar=("OLD", "NEW"),
                        help="compare two source trees (see above)")
    parser.add_argument("--case", action="append", metavar="SHAPE:N",
                        help="with --ab: a graph to compare (repeatable)")
    parser.add_argument("--rounds", type=int, default=15, help="with --ab: rounds")
    parser.add_argument("--instructions", action="store_true",
                        help="with --ab: count instructions (valgrind) instead of timing")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.cool)
        return 0
    if args.ab:
        cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.case or []]
        if args.instructions:
            return compare_instructions(args.ab[0], args.ab[1],
                                        cases or [("wide", 20_000), ("layered", 4_000)])
        return compare_trees(args.ab[0], args.ab[1], cases or [("wide", 20_000),
                                                             ("layered", 4_000)],
                             args.rounds, args.repeat)

    # Figures that are compared are measured round by round, close in time
    # (the machine's speed drifts over a minute): each round runs our child
    # (median of --repeat) and then upstream's (one run), or the small and
    # the big graph of a scaling pair; a ratio is taken per round, and the
    # table gives the median of those ratios.
    rounds = max(1, args.upstream_repeat)
    times: dict[tuple[str, int], list[float]] = {}
    upstream: dict[tuple[str, int], list[float]] = {}
    speedup: dict[tuple[str, int], float] = {}
    scaling: dict[str, float] = {}

    def ours_once(shape: str, n: int) -> float:
        t = measure(sys.executable, shape, n, args.repeat)
        times.setdefault((shape, n), []).append(t)
        return t

    def cooled(shape: str, n: int) -> float:
        return measure(sys.executable, shape, n, args.repeat, cool=True)

    for shape, n, compare in CASES:
        if compare and args.upstream_python:
            ratios = []
            for _ in range(rounds):
                t = ours_once(shape, n)
                up = measure(args.upstream_python, shape, n, 1)
                upstream.setdefault((shape, n), []).append(up)
                ratios.append(up / t)
            speedup[(shape, n)] = statistics.median(ratios)
            print(f"{shape:8} {n:>7}  ours {statistics.median(times[(shape, n)]) * 1e3:9.1f} ms"
                  f"  upstream {statistics.median(upstream[(shape, n)]) * 1e3:10.1f} ms"
                  f"  speed-up {speedup[(shape, n)]:7.1f}x (per-round ratios "
                  f"{', '.join(f'{r:.1f}' for r in ratios)})", flush=True)
    for shape, small, big in SCALING:
        ratios = [cooled(shape, big) / cooled(shape, small) for _ in range(rounds)]
        scaling[shape] = statistics.median(ratios)
        print(f"{shape:8} {small:>7} -> {big:>7}: {scaling[shape]:.1f}x the time (per round "
              f"{', '.join(f'{r:.1f}' for r in ratios)})", flush=True)
    for shape, n, _ in CASES:
        if (shape, n) not in times:
            ours_once(shape, n)

    table = [
        "| shape | jobs | dojobber (ms) | µs/job | upstream 0.6.3 (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, n, _ in CASES:
        t = statistics.median(times[(shape, n)])
        up = upstream.get((shape, n))
        table.append(
            f"| {shape} | {n:,} | {t * 1e3:.1f} | {t / n * 1e6:.2f} | "
            + (f"{statistics.median(up) * 1e3:,.0f} | {speedup[(shape, n)]:,.1f}x |"
               if up else "- | - |")
        )
    scale = [
        f"- {shape}: {small:,} → {big:,} jobs costs {scaling[shape]:.1f}x the time"
        for shape, small, big in SCALING
    ]
    text = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}; each figure the median over "
        f"{rounds} rounds of a fresh process running {args.repeat} samples (upstream: one); "
        "configure() + checknrun(), timed right after the graph's classes are made (as "
        "a script does), class creation not timed.  Speed-up and scaling are the median "
        "of the ratios taken in each round (both sides measured back to back); for the "
        "scaling pairs each sample starts with the per-core caches cooled, so that the "
        "small graph is not timed from the cache while the big one is not.",
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


def compare_trees(old: str, new: str, cases: list[tuple[str, int]], rounds: int,
                  repeat: int) -> int:
    """Print, per case, the median over ``rounds`` of NEW's time / OLD's."""
    for shape, n in cases:
        ratios, olds, news = [], [], []
        for r in range(rounds):
            order = [(old, olds), (new, news)]
            if r % 2:
                order.reverse()
            for tree, into in order:
                into.append(measure(sys.executable, shape, n, repeat, tree=tree))
            ratios.append(news[-1] / olds[-1])
        print(f"{shape:8} {n:>7}  old {statistics.median(olds) * 1e3:8.1f} ms"
              f"  new {statistics.median(news) * 1e3:8.1f} ms"
              f"  new/old {statistics.median(ratios):.3f} (median of {rounds} rounds; "
              f"per round {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)
    return 0


def instructions(tree: str, shape: str, n: int, repeat: int) -> int:
    """Instructions callgrind counts in a child importing ``tree``."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         os.path.realpath(sys.executable), "-S", str(Path(__file__).resolve()),
         "--child", shape, str(n), str(repeat)],
        env={**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"},
        capture_output=True, text=True, check=True,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise SystemExit(f"no instruction count from valgrind:\n{out.stderr}")


def compare_instructions(old: str, new: str, cases: list[tuple[str, int]]) -> int:
    """Print, per case, configure() + checknrun() instructions per job."""
    for shape, n in cases:
        per_job = []
        for tree in (old, new):
            run, made = (instructions(tree, shape, n, r) for r in (0, -1))
            per_job.append((run - made) / n)
        print(f"{shape:8} {n:>7}  old {per_job[0]:9,.0f}  new {per_job[1]:9,.0f} "
              f"instructions/job  new/old {per_job[1] / per_job[0]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
