"""SQLite files of dojobber's own: created private, marked, never foreign.

Records and boards are SQLite files that hold arguments, logs and
tracebacks.  They are created readable by their owner only (mode 0600; SQLite
gives its ``-wal`` and ``-shm`` files the same mode), and marked with
``PRAGMA application_id``, so that a path given by mistake (another
program's database, a board given as records or the other way round) is
refused before anything in it is changed: :func:`check_ours` reads the mark
and the table names, and writes nothing.  A file of ours from before the
mark (the expected tables, nothing else) is marked on first use.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection

__all__ = [
    "BOARD_ID",
    "RECORDS_ID",
    "ForeignDatabaseError",
    "check_ours",
    "create_private",
    "mark_ours",
]

#: ``PRAGMA application_id`` of a records database ("DJBR").
RECORDS_ID = 0x444A4252
#: ``PRAGMA application_id`` of a board ("DJBB").
BOARD_ID = 0x444A4242

_KINDS = {RECORDS_ID: "a dojobber records database", BOARD_ID: "a dojobber board"}


class ForeignDatabaseError(Exception):
    """The file is not a database of the kind asked for (the message says
    what it is); nothing in it was changed."""


def create_private(path: str) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (its directory
    too, mode 0700 for new directories)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def check_ours(conn: sqlite3.Connection, app_id: int, tables: Collection[str]) -> bool:
    """Whether the database on ``conn`` needs :func:`mark_ours` (new and
    empty, or ours from before the mark: it holds ``tables`` and no others);
    raise :class:`ForeignDatabaseError` when it is not ours.  Reads only."""
    found = conn.execute("PRAGMA application_id").fetchone()[0]
    if found == app_id:
        return False
    if found:
        what = _KINDS.get(found, f"another program's database (application_id {found:#x})")
        raise ForeignDatabaseError(f"it is {what}, not {_KINDS[app_id]}")
    names = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if not names or names == set(tables):
        return True
    shown = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "")
    raise ForeignDatabaseError(
        f"it is another program's database (tables {shown}), not {_KINDS[app_id]}; "
        "nothing in it was changed"
    )


def mark_ours(conn: sqlite3.Connection, app_id: int) -> None:
    """Write the mark (after :func:`check_ours` said so)."""
    conn.execute(f"PRAGMA application_id = {int(app_id)}")
