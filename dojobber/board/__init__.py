"""A run queue: post run requests, let workers claim and carry them out.

:mod:`~dojobber.board.base` holds the interface (:class:`Board`) and the
life of a request; :mod:`~dojobber.board.sqlite` is the SQLite backend
(one host), :mod:`~dojobber.board.postgres` the PostgreSQL one (many hosts,
needs the ``postgres`` extra); :mod:`~dojobber.board.worker` carries
requests out.  :func:`open_board` opens the board at a location (a file
path or a ``postgresql://`` URL) with the backend that fits it.
"""

from __future__ import annotations

import os

from .._postgres import is_postgres_url
from .base import STATES, Board, BoardError, Posted, Request, UnknownRequestError, worker_name
from .sqlite import SQLiteBoard, default_path

__all__ = [
    "STATES",
    "Board",
    "BoardError",
    "Posted",
    "Request",
    "SQLiteBoard",
    "UnknownRequestError",
    "default_path",
    "open_board",
    "worker_name",
]

#: Environment variable naming the board (the CLI's default).
ENV_VAR = "DOJOBBER_BOARD"


def open_board(location: str | os.PathLike[str] | None = None) -> Board:
    """The board at ``location``: a ``postgresql://`` URL opens a
    :class:`~dojobber.board.postgres.PostgresBoard`, anything else is a
    SQLite file (default :func:`default_path`, which follows
    ``$DOJOBBER_BOARD``)."""
    if location is None:
        env = os.environ.get(ENV_VAR, "")
        location = env if is_postgres_url(env) else default_path()
    if is_postgres_url(location):
        from .postgres import PostgresBoard

        return PostgresBoard(str(location))
    return SQLiteBoard(location)
