"""Parallel execution: speed-up on I/O-bound graphs, overhead on instant jobs.

1. I/O-bound: 400 jobs whose Check sleeps 20 ms, in 8 layers of 50 (each job
   depends on 3 jobs of the layer below).  Wall time with W = 1, 4, 16, 64
   threads against the lower bound max(critical path, total work / W).
2. Thread overhead: wide graph of 20 000 instant jobs (fail, run, pass),
   workers=4 against the sequential engine.
3. dask: a LocalCluster of 2 worker processes, 1 000 instant jobs; wall time
   per job.

Medians of several runs; ``--write FILE`` stores the table in FILE between
markers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _readme import write_section
from bench_engine import make_graph

import dojobber

SLEEP, LAYERS, WIDTH = 0.02, 8, 50


def io_graph() -> type[dojobber.Job]:
    def check(self: Any) -> None:
        time.sleep(SLEEP)

    rng = random.Random(7)
    below: list[type[dojobber.Job]] = []
    for layer in range(LAYERS):
        current = []
        for i in range(WIDTH):
            # the job at its own position below (so all 400 are reachable)
            # and two random others
            deps = [below[i], *rng.sample([b for b in below if b is not below[i]], 2)] \
                if below else []
            current.append(type(f"io{layer}_{i}", (dojobber.Job,),
                                {"Check": check, "DEPS": deps}))
        below = current
    return type("io_root", (dojobber.DummyJob,), {"DEPS": below})


def timed(root: type[dojobber.Job], **options: Any) -> float:
    dojob = dojobber.DoJobber()
    start = time.perf_counter()
    dojob.configure(root, default_retry_delay=0, **options)
    dojob.checknrun()
    took = time.perf_counter() - start
    assert dojob.success()
    return took


def median(runs: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    lines = [f"Measured {time.strftime('%Y-%m-%d')}, median of {args.repeat} runs.", ""]

    lines += ["I/O-bound: 400 jobs sleeping 20 ms, 8 layers of 50, 3 deps each.", "",
              "| threads | wall (s) | lower bound (s) | ratio |", "|---:|---:|---:|---:|"]
    total = LAYERS * WIDTH * SLEEP
    for workers in (1, 4, 16, 64):
        root = io_graph()
        took = median(args.repeat, lambda root=root, w=workers: timed(root, workers=w))
        bound = max(LAYERS * SLEEP, total / workers)
        lines.append(f"| {workers} | {took:.3f} | {bound:.3f} | {took / bound:.3f} |")
        print(lines[-1], flush=True)

    seq = median(args.repeat, lambda: timed(make_graph("wide", 20_000)))
    thr = median(args.repeat, lambda: timed(make_graph("wide", 20_000), workers=4))
    lines += ["", "Engine overhead on 20 000 instant jobs (wide):", "",
              "| engine | wall (ms) | µs/job | vs sequential |", "|---|---:|---:|---:|",
              f"| sequential | {seq * 1e3:.0f} | {seq / 2e4 * 1e6:.1f} | 1.00x |",
              f"| workers=4 | {thr * 1e3:.0f} | {thr / 2e4 * 1e6:.1f} | {thr / seq:.2f}x |"]
    print(lines[-1], flush=True)

    if not args.no_dask:
        import logging

        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None, host="127.0.0.1",
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            executor = client.get_executor(pure=False)
            timed(make_graph("wide", 100), executor=executor)  # warm up
            took = median(args.repeat, lambda: timed(make_graph("wide", 1000), executor=executor))
        lines += ["", "dask LocalCluster (2 worker processes), 1 000 instant jobs (wide): "
                  f"{took:.2f} s, **{took / 1000 * 1e3:.2f} ms per job**."]
        print(lines[-1], flush=True)

    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "parallel", "Parallel and distributed", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
