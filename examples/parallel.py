"""Check twelve "hosts" at once: the same graph on 1 thread, on 6, or on any
executor (``--executor dask-local:2`` for a dask cluster on this machine).

Each host job waits 0.2 s, as a job waiting on the network would; a report
job depends on all of them.  Run it with ``python examples/parallel.py``.
"""

from __future__ import annotations

import argparse
import time

from dojobber import DoJobber, DummyJob, Job
from dojobber.cluster import open_executor


class Ping(Job):
    """A host answers (stands in for an HTTP or SSH probe)."""

    HOST = "localhost"

    def Check(self) -> str:
        time.sleep(0.2)
        self.global_storage[f"up:{self.HOST}"] = True  # type: ignore[index]
        return f"{self.HOST} is up"


class Fleet(DummyJob):
    """Every host answers."""

    DEPS = [Ping.variant(f"Ping host{n:02}", HOST=f"host{n:02}") for n in range(12)]

    def Check(self) -> int:
        return sum(1 for key in self.global_storage or {} if key.startswith("up:"))


def converge(**options: object) -> float:
    dojob = DoJobber()
    dojob.configure(Fleet, **options)  # type: ignore[arg-type]
    start = time.perf_counter()
    dojob.checknrun()
    took = time.perf_counter() - start
    assert dojob.success()
    print(f"{options or 'sequential'}: {dojob.noderesults['Fleet']} hosts up in {took:.2f}s")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", help="threads:N, processes:N, dask-local:N, dask://HOST:PORT")
    args = parser.parse_args()
    converge()
    converge(workers=6)
    if args.executor:
        with open_executor(args.executor) as executor:
            converge(executor=executor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
