"""Writing graph pictures for ``dojobber graph`` and ``dojobber run --graph``
(with :mod:`dojobber.render`)."""

from __future__ import annotations

import os
import sys

from .errors import DojobberError
from .graph import JobGraph
from .results import RunResult

__all__ = ["GraphOutputError", "format_of", "write_picture"]


class GraphOutputError(DojobberError):
    """The picture's output path or format will not do."""


def format_of(path: str, fmt: str | None) -> str:
    """The format asked for, else the output file's extension."""
    if fmt:
        return fmt
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if not ext:
        raise GraphOutputError(
            f"cannot tell the picture format of {path!r}: give a file name ending in "
            ".png, .svg, .dot, .mmd ... or --format FMT"
        )
    return ext


def write_picture(
    graph: JobGraph,
    result: RunResult | None,
    path: str,
    fmt: str | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = None,
    details: bool = False,
) -> str:
    """Draw and write the picture to ``path`` (``-``: stdout); return the
    format used.  Nothing is written when drawing fails."""
    from .render import render

    kind = format_of(path, fmt) if path != "-" else (fmt or "dot")
    data = render(graph, result, kind, focus=focus, max_nodes=max_nodes, details=details)
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return kind
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # all or nothing
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise GraphOutputError(f"cannot write the picture to {path}: {err.strerror}") from err
    return kind
