"""Graph pictures of 5 000-job graphs: DOT/Mermaid text and SVG via ``dot``.

Each graph is run once first (one job in the middle fails, a third of the
others need a Run), so the pictures carry every colour.  Shapes:

* wide     one root with N - 1 leaves
* layered  layers of 50 jobs, each depending on the job at its position in
           the layer below and one other there
* random   each job depends on 2 of the 200 jobs before it
* root-all random, but the root depends on every job (a "group everything"
           DummyJob)
* skip2    job i depends on job i-2, the root on every job (issue 18: 200
           such jobs took dot more than 30 s)

In wide, layered and random the root depends on every job no other job
needs: in the random shape that is ~700 jobs at every depth, so ~700 edges
span up to 130 ranks, the hard case for dot's layout (each rank crossed
costs it a virtual node).  root-all and skip2 add thousands of such edges,
all implied by longer paths: the default picture leaves them out
(transitive reduction); ``all_edges=True`` draws them, bounded by
``--all-edges-timeout``.

Timed (median of ``--repeat``): the DOT text and the Mermaid text of the
default picture (picking jobs, labels, graphviz quoting, the reduction), the
default SVG (at most ``DEFAULT_MAX_NODES`` jobs; DOT text + the layout in its
child process) and the SVG of ``focus='failures'``; once each, bounded by
``--whole-timeout``, the SVG of the whole graph (``max_nodes=None``) and the
whole graph with every edge.  One extra row draws the layered graph's default
picture with dot's default layout settings, i.e. without the speed-ups
render.py applies above ``BIG_GRAPH`` jobs, for comparison in the same run.

``python benchmarks/bench_render.py [--jobs 5000] [--repeat 3] [--whole-timeout 60]
[--write benchmarks/README.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _readme import write_section  # benchmarks/ is on sys.path when run as a script

import dojobber.render.dot as render_module
from dojobber import DoJobber, Job, RunResult
from dojobber.graph import JobGraph
from dojobber.render import (
    DEFAULT_MAX_NODES,
    LayoutTimeoutError,
    engines,
    render,
    to_dot,
    to_mermaid,
)
from dojobber.render.picture import build_picture


def make_jobs(shape: str, n: int) -> type[Job]:
    """Job classes of one shape; returns the root."""
    rng = random.Random(42)
    fail_at = n // 2

    def job(i: int, deps: list[type[Job]]) -> type[Job]:
        def check(self: Job) -> None:
            if i == fail_at:
                raise RuntimeError(f"job {i} cannot reach its server: connection refused")
            if i % 3 == 0 and not self.storage.get("ran"):  # type: ignore[union-attr]
                raise LookupError("needs a Run")

        def run(self: Job) -> None:
            self.storage["ran"] = True  # type: ignore[index]

        return type(f"Job {i}", (Job,), {"DEPS": deps, "Check": check, "Run": run, "TRIES": 1})

    classes: list[type[Job]] = []
    if shape == "wide":
        classes = [job(i, []) for i in range(n - 1)]
        return job(n - 1, classes)
    if shape == "skip2":
        for i in range(n - 1):
            classes.append(job(i, [classes[i - 2]] if i >= 2 else []))
        return job(n - 1, classes)
    needed: set[int] = set()
    for i in range(n - 1):
        if shape == "layered":
            layer = i // 50
            picked = [i - 50, (layer - 1) * 50 + rng.randrange(50)] if layer else []
        else:
            picked = rng.sample(range(max(0, i - 200), i), min(2, i))
        needed.update(picked)
        classes.append(job(i, [classes[d] for d in dict.fromkeys(picked)]))
    if shape == "root-all":
        return job(n - 1, classes)
    # The root needs every job nothing else needs: all n jobs are in the graph.
    return job(n - 1, [c for i, c in enumerate(classes) if i not in needed])


def run_graph(shape: str, n: int) -> tuple[JobGraph, RunResult]:
    dojob = DoJobber()
    dojob.configure(make_jobs(shape, n), default_retry_delay=0)
    return dojob.jobs, dojob.checknrun()


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: A bound no picture reaches: the default pictures are timed whole, through
#: the same child-process layout as with the default timeout.
UNBOUNDED = 1e6


def bounded_time(
    graph: JobGraph, result: RunResult, timeout: float, **options: Any
) -> float | None:
    """Seconds for one SVG, or None when its layout took over ``timeout``."""
    start = time.perf_counter()
    try:
        render(graph, result, "svg", timeout=timeout, **options)
    except LayoutTimeoutError:
        return None
    return time.perf_counter() - start


def measure(graph: JobGraph, result: RunResult, repeat: int, bound: float) -> dict[str, Any]:
    picture = build_picture(graph, result, max_nodes=DEFAULT_MAX_NODES)
    return {
        "drawn": len(picture.nodes),
        "edges": len(picture.edges),
        "implied": picture.implied_edges,
        "dot_text": median_time(lambda: to_dot(graph, result), repeat),
        "mermaid": median_time(lambda: to_mermaid(graph, result), repeat),
        "svg": median_time(lambda: render(graph, result, "svg", timeout=UNBOUNDED), repeat),
        "focus": median_time(
            lambda: render(graph, result, "svg", focus="failures", timeout=UNBOUNDED), repeat),
        "svg_mb": len(render(graph, result, "svg", timeout=UNBOUNDED)) / 1e6,
        "whole": bounded_time(graph, result, bound, max_nodes=None),
        "all_edges": bounded_time(graph, result, bound, max_nodes=None, all_edges=True),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path, help="update this README's Rendering section")
    parser.add_argument("--whole-timeout", type=float, default=60.0,
                        help="bound on the SVGs of the whole graph (seconds)")
    args = parser.parse_args()
    n, repeat = args.jobs, args.repeat

    rows = []
    for shape in ("wide", "layered", "random", "root-all", "skip2"):
        graph, result = run_graph(shape, n)
        row = measure(graph, result, repeat, args.whole_timeout)
        rows.append({"shape": shape, **row})
        print(rows[-1], flush=True)

    graph, result = run_graph("layered", n)
    big, render_module.BIG_GRAPH = render_module.BIG_GRAPH, 10**9
    try:
        defaults = median_time(lambda: render(graph, result, "svg", timeout=UNBOUNDED), repeat)
    finally:
        render_module.BIG_GRAPH = big
    sped_up = next(r["svg"] for r in rows if r["shape"] == "layered")
    print(f"layered, dot defaults: {defaults:.2f}s", flush=True)

    dot_version = subprocess.run(
        ["dot", "-V"], capture_output=True, text=True, check=True
    ).stderr.strip()
    bound = args.whole_timeout

    def bounded(seconds: float | None) -> str:
        return f"{seconds:.2f}" if seconds is not None else f"> {bound:g}"

    table = [
        "| shape | jobs | drawn by default | edges drawn (implied, left out) "
        "| DOT text (ms) | Mermaid text (ms) | SVG, default (s) | SVG, focus='failures' (s) "
        "| SVG size (MB) | SVG, whole graph (s) | SVG, whole graph, all_edges=True (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['shape']} | {n:,} | {r['drawn']:,} | {r['edges']:,} ({r['implied']:,}) | "
            f"{r['dot_text'] * 1e3:.0f} | {r['mermaid'] * 1e3:.0f} | "
            f"{r['svg']:.2f} | {r['focus']:.2f} | {r['svg_mb']:.1f} | "
            f"{bounded(r['whole'])} | {bounded(r['all_edges'])} |"
        )
    slowest = max(rows, key=lambda r: r["svg"])
    text = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, {dot_version} (layout engines "
        f"here: {', '.join(engines())}; big pictures go to the dot program in a child "
        f"process); load average {os.getloadavg()[0]:.1f} at the end on "
        f"{os.cpu_count()} cores; median of {repeat} runs (the whole-graph columns: one "
        f"run, stopped after {bound:g} s); "
        f"`python benchmarks/bench_render.py --jobs {n} --repeat {repeat}`.",
        "",
        *table,
        "",
        f"- The default picture (at most {DEFAULT_MAX_NODES:,} jobs, nearest the root and "
        f"failures first) takes at most {slowest['svg']:.2f} s ({slowest['shape']}); "
        "`max_nodes=None` draws the whole graph.",
        f"- Layered graph's default picture with dot's default layout settings: "
        f"{defaults:.2f} s, {defaults / sped_up:.1f}x the time with the settings render.py "
        f"uses above {render_module.BIG_GRAPH} jobs (`newrank`, `mclimit=0.1`, "
        "`nslimit=0.1`, `searchsize=10`).",
        "- The random shape is dot's hard case: its root needs ~700 jobs at every "
        "depth, and each rank an edge crosses is a virtual node for the layout "
        "(`dot -v` on the whole graph: ~116 000 nodes in the positioning step, which "
        "is most of the time).",
        "- root-all and skip2 put the root over every job: the default picture leaves "
        "out the edges a longer path implies (the count in brackets); drawn with every "
        "edge they are bounded by the timeout.",
        "- Making the DOT text (Python) is "
        + ", ".join(f"{r['dot_text'] / r['svg']:.0%}" for r in rows)
        + " of the default SVG time (" + ", ".join(r["shape"] for r in rows)
        + "); the rest is the layout.",
    ])
    print(text)
    if args.write:
        write_section(args.write, "render", "Rendering", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
