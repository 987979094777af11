"""A run queue: post run requests, let workers claim and carry them out.

:mod:`~dojobber.board.base` holds the interface (:class:`Board`) and the
life of a request; :mod:`~dojobber.board.sqlite` is the SQLite backend;
:mod:`~dojobber.board.worker` carries requests out.  :func:`open_board`
opens the board at a location with the backend that fits it.
"""

from __future__ import annotations

import os

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
    """The board at ``location`` (a file path; default :func:`default_path`)."""
    return SQLiteBoard(location if location is not None else default_path())
