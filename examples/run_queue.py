"""Post runs to a board and let a worker carry them out.

Posts three requests (one of them twice: it is queued once), then runs a
worker in this process until nothing is due, and lists the board.  The same
from a shell::

    dojobber post examples/run_queue.py:Greeting --arg name=ann
    dojobber worker --once
    dojobber board

Run it with ``python examples/run_queue.py [--dir DIR]``.  With
``--board postgresql://user:password@host/db`` (needs ``dojobber[postgres]``)
the board is on a PostgreSQL server, where workers on other hosts could
take the requests too; ``--records URL_OR_PATH`` records each run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dojobber import Job
from dojobber.board import open_board
from dojobber.worker import WorkerOptions, run_worker


class Greeting(Job):
    """A file greets NAME in DIR."""

    def Check(self, *, name: str, where: str) -> str:
        path = Path(where) / f"hello-{name}.txt"
        if not path.exists():
            raise FileNotFoundError(path)
        return path.read_text().strip()

    def Run(self, *, name: str, where: str) -> None:
        (Path(where) / f"hello-{name}.txt").write_text(f"hello {name}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where board and files go")
    parser.add_argument("--board", help="board file or postgresql:// URL (default: in DIR)")
    parser.add_argument("--records", help="run records file or postgresql:// URL (default: none)")
    args = parser.parse_args()
    where = args.dir or Path(tempfile.mkdtemp(prefix="dojobber-queue-"))
    where.mkdir(parents=True, exist_ok=True)
    board = open_board(args.board or where / "board.sqlite3")
    target = f"{Path(__file__).resolve()}:Greeting"
    for name in ("ann", "bob", "ann"):
        posted = board.post(target, kwargs={"name": name, "where": str(where)})
        note = " (already waiting)" if posted.duplicate else ""
        print(f"posted {name}: request {posted.id}{note}")
    count = run_worker(board, WorkerOptions(once=True, poll=0.1, records=args.records))
    print(f"the worker carried out {count} request(s)")
    for req in board.requests():
        runs = f", run {req.runs[-1]}" if req.runs else ""
        print(f"  request {req.id}: {req.kwargs['name']} -> {req.state} ({req.outcome}{runs})")
    return 0 if all(r.state == "done" for r in board.requests()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
