"""converge()'s own cost per round, next to plain checknrun() calls.

A wide graph (one root over N-1 leaves; every leaf passes at its first
Check, the root always fails with TRIES=1, so no round converges) is run
``ROUNDS`` times by ``dj.converge(max_rounds=ROUNDS, backoff=0)`` and by
``ROUNDS`` calls of ``dj.checknrun()``, alternately, ``--repeat`` times.
The figure is the median of the per-pair ratios (converge / plain), so
that the machine's drift between pairs cancels out.  What converge adds
per round: the round events, the failure signature of the round (one pass
over the jobs) and the wait bookkeeping.  Both sides keep every round's
result until the clock stops (as ``converge()`` returns them all).

    .venv/bin/python benchmarks/bench_converge.py [--jobs 20000] [--write benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._readme import write_section

ROUNDS = 3


def make_graph(n: int) -> Any:
    import dojobber

    def leaf_check(self: Any) -> bool:
        return True

    def root_check(self: Any) -> None:
        raise RuntimeError("the root never holds")

    leaves = [type(f"leaf{i}", (dojobber.Job,), {"Check": leaf_check}) for i in range(n - 1)]
    return type("root", (dojobber.Job,), {"DEPS": leaves, "Check": root_check,
                                          "Run": lambda self: None, "TRIES": 1})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", type=Path, help="put the results in this README")
    args = parser.parse_args()

    from dojobber import DoJobber

    dj = DoJobber()
    dj.configure(make_graph(args.jobs))
    dj.checknrun()  # warm: first instantiation of every class

    # Both keep every round's result until the clock stops (converge()
    # returns them all), so that neither times the freeing of the other's.
    def plain() -> float:
        gc.collect()
        start = time.perf_counter()
        kept = [dj.checknrun() for _ in range(ROUNDS)]
        took = time.perf_counter() - start
        assert len(kept) == ROUNDS
        return took

    def rounds() -> float:
        gc.collect()
        start = time.perf_counter()
        session = dj.converge(max_rounds=ROUNDS, backoff=0)
        took = time.perf_counter() - start
        assert len(session.rounds) == ROUNDS and not session.success()
        return took

    pairs: list[tuple[float, float]] = []
    for k in range(args.repeat):
        if k % 2:
            b = rounds()
            a = plain()
        else:
            a = plain()
            b = rounds()
        pairs.append((a, b))
    ratio = statistics.median(b / a for a, b in pairs)
    per_round_plain = statistics.median(a for a, _ in pairs) / ROUNDS
    per_round_conv = statistics.median(b for _, b in pairs) / ROUNDS
    body = (
        f"wide {args.jobs} (the root fails, so no round converges), {ROUNDS} rounds,"
        f" {args.repeat} alternating pairs; Python {platform.python_version()}\n\n"
        "| | per round (median) |\n|---|---|\n"
        f"| {ROUNDS} x `checknrun()` | {per_round_plain * 1000:.1f} ms |\n"
        f"| `converge(max_rounds={ROUNDS}, backoff=0)` | {per_round_conv * 1000:.1f} ms |\n\n"
        f"converge / plain, median of the pairs' ratios: **{ratio:.3f}**"
        f" ({(ratio - 1) * 100:+.1f}%; the target is <= +5%)\n"
    )
    print(body)
    if args.write:
        write_section(
            args.write, "converge", "Converge",
            body,
            intro="`python benchmarks/bench_converge.py --write benchmarks/README.md`: "
                  "what `DoJobber.converge()` costs per round over plain `checknrun()` calls.",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
