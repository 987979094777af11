"""Laying out DOT source into image bytes, with a bound on the time taken.

Two engines, both Graphviz's ``dot`` layout:

* pygraphviz (the ``graph`` extra): its manylinux wheels bundle Graphviz and
  the cairo renderer, so ``pip install 'dojobber[graph]'`` alone draws PNG,
  SVG and PDF, with no system package;
* the ``dot`` program, where pygraphviz is not installed.

A layout inside this process cannot be interrupted, and dot's time grows
fast with long edges (measured: 60 jobs where job i needs job i-2 and the
root needs all of them take 2.4 s, 100 such jobs 22 s).  So with a
``timeout`` the layout runs in a child process that is killed when the time
runs out (:class:`LayoutTimeoutError` then says how to draw less): the
``dot`` program when it is on ``PATH`` (it starts in milliseconds), else a
Python child running pygraphviz (about half a second to start).  Without
the ``dot`` program, pictures of at most 40 jobs and 80 edges are laid out
by pygraphviz in-process instead, where no shape takes long.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

from ._errors import (
    GraphvizFailedError,
    GraphvizNotFoundError,
    LayoutTimeoutError,
)

__all__ = ["IN_PROCESS_EDGES", "IN_PROCESS_NODES", "engines", "lay_out"]

#: Pictures up to this size are laid out in-process by pygraphviz (when it
#: is installed): dot takes milliseconds on them whatever their shape.
IN_PROCESS_NODES = 40
IN_PROCESS_EDGES = 80

#: The child process that lays out with pygraphviz: DOT on stdin, image on
#: stdout.  It imports nothing of dojobber.
_CHILD = (
    "import sys, pygraphviz\n"
    "graph = pygraphviz.AGraph(string=sys.stdin.buffer.read().decode())\n"
    "sys.stdout.buffer.write(graph.draw(format=sys.argv[1], prog='dot'))\n"
)


def _has_pygraphviz() -> bool:
    if "pygraphviz" in sys.modules:  # imported already, or blocked with None
        return sys.modules["pygraphviz"] is not None
    try:
        import pygraphviz  # noqa: F401
    except ImportError:
        return False
    return True


def engines() -> list[str]:
    """The layout engines available here, preferred first: ``pygraphviz``
    and/or ``dot`` (the program)."""
    found = []
    if _has_pygraphviz():
        found.append("pygraphviz")
    if shutil.which("dot"):
        found.append("dot")
    return found


def lay_out(
    source: str, fmt: str, *, nodes: int, edges: int, timeout: float | None
) -> bytes:
    """``source`` (DOT) drawn as ``fmt`` bytes.

    nodes / edges: the picture's size, which decides in-process or not.
    timeout: seconds the layout may take (None: no bound, and pygraphviz
    runs in-process whatever the size).
    """
    available = engines()
    if not available:
        raise GraphvizNotFoundError(fmt)
    small = nodes <= IN_PROCESS_NODES and edges <= IN_PROCESS_EDGES
    has_dot = "dot" in available
    if "pygraphviz" in available and (timeout is None or (small and not has_dot)):
        return _in_process(source, fmt)
    if has_dot:
        command = [shutil.which("dot") or "dot", f"-T{fmt}"]
        engine = "the dot program"
    else:
        command = [sys.executable, "-c", _CHILD, fmt]
        engine = "pygraphviz"
    try:
        done = subprocess.run(
            command, input=source.encode(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        # subprocess.run killed the child and waited for it.
        raise LayoutTimeoutError(fmt, timeout or 0.0, nodes, edges, engine) from None
    if done.returncode != 0:
        raise GraphvizFailedError(fmt, done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout


def _in_process(source: str, fmt: str) -> bytes:
    import pygraphviz

    graph: Any = pygraphviz.AGraph(string=source)
    try:
        data: bytes = graph.draw(format=fmt, prog="dot")
    except (OSError, ValueError) as err:
        raise GraphvizFailedError(fmt, 1, str(err)) from None
    return data
