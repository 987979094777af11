"""Look at run records and a board in a browser: ``dojobber serve``.

Records two runs of a small graph (the first fails at ``Sitemap``, the
second converges after the "fix"), posts a request to a board, and serves
both on http://127.0.0.1:8642 until Ctrl-C.  The same from a shell::

    dojobber run site.py:Published          # records by default
    dojobber serve                          # prints the URL to open

Run it with ``python examples/web_view.py [--dir DIR] [--port N]``;
``--check`` serves on a free port, reads the runs list as JSON once and
stops (what the test suite does).  ``--records URL`` / ``--board URL`` put
the records and the board on PostgreSQL instead (``pip install
'dojobber[web,postgres]'``), as a fleet's would be::

    python examples/web_view.py --records postgresql://me@db/dojobber \
        --board postgresql://me@db/dojobber
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from dojobber import DoJobber, Job
from dojobber.board import open_board
from dojobber.web import WebOptions, serve

log = logging.getLogger("example.web")
FIXED: dict[str, bool] = {"sitemap": False}


class Pages(Job):
    def Check(self, **kw: Any) -> None:
        log.info("12 pages rendered")


class Sitemap(Job):
    DEPS = [Pages]
    TRIES = 1

    def Check(self, **kw: Any) -> None:
        if not FIXED["sitemap"]:
            raise KeyError("base_url is not set in site.toml")
        log.info("sitemap lists 12 pages")


class Published(Job):
    DEPS = [Sitemap, Pages]

    def Check(self, **kw: Any) -> None:
        log.info("published")


def record(records: str, board: str) -> None:
    for fixed in (False, True):
        FIXED["sitemap"] = fixed
        dojob = DoJobber()
        dojob.configure(Published, records=records)
        dojob.set_args(site="example", password="not-stored")  # masked in the records
        dojob.checknrun()
        if dojob.records is not None:
            dojob.records.close()
    open_board(board).post(f"{Path(__file__).resolve()}:Published", kwargs={"site": "example"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where records and board go")
    parser.add_argument("--port", type=int, default=8642)
    parser.add_argument("--check", action="store_true", help="serve, read once, stop")
    parser.add_argument("--records", help="records file or postgresql:// URL (default: in DIR)")
    parser.add_argument("--board", help="board file or postgresql:// URL (default: in DIR)")
    args = parser.parse_args()
    where = args.dir or Path(tempfile.mkdtemp(prefix="dojobber-web-"))
    where.mkdir(parents=True, exist_ok=True)
    records = args.records or str(where / "records.sqlite3")
    board = args.board or str(where / "board.sqlite3")
    record(records, board)
    options = WebOptions(records=records, board=board, port=0 if args.check else args.port)
    if not args.check:
        serve(options)  # prints the URL; Ctrl-C stops it
        return 0
    found: list[str] = []
    server = threading.Thread(target=serve, args=(options,),
                              kwargs={"on_listening": found.append}, daemon=True)
    server.start()
    while not found:
        time.sleep(0.05)
    with urllib.request.urlopen(f"{found[0]}/api/runs", timeout=30) as reply:
        runs = json.load(reply)["runs"]
    for run in runs:
        print(f"run {run['id']}: {run['root']} {run['outcome']}, trend {run['trend']['verdict']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
