"""The errors of drawing pictures (all :class:`RenderError`)."""

from __future__ import annotations

from ..errors import DojobberError

__all__ = [
    "GraphvizFailedError",
    "GraphvizNotFoundError",
    "GraphvizPackageMissingError",
    "GraphvizUnavailableError",
    "LayoutTimeoutError",
    "NoImageViewerError",
    "RenderError",
    "UnsupportedFormatError",
]


class RenderError(DojobberError):
    """A graph picture could not be made."""


class UnsupportedFormatError(RenderError, ValueError):
    """The output format asked for is not one dojobber or ``dot`` writes."""

    def __init__(self, fmt: str, known: list[str]) -> None:
        self.fmt = fmt
        super().__init__(
            f"cannot draw the graph as {fmt!r}: not a known format; use one of "
            f"{', '.join(known)}"
        )


class GraphvizUnavailableError(RenderError):
    """Graphviz (the ``graphviz`` package or the ``dot`` program) is missing."""


class GraphvizPackageMissingError(GraphvizUnavailableError, ImportError):
    """The ``graphviz`` Python package (extra ``graph``) is not installed."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(
            f"cannot draw the graph as {fmt}: the 'graphviz' Python package is not "
            "installed; pip install 'dojobber[graph]' (or ask for fmt='mermaid', "
            "which needs nothing)"
        )


class GraphvizNotFoundError(GraphvizUnavailableError):
    """Neither pygraphviz nor Graphviz's ``dot`` program is installed."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(
            f"cannot draw the graph as {fmt}: neither pygraphviz nor Graphviz's 'dot' "
            "program is installed; pip install 'dojobber[graph]' (its pygraphviz wheel "
            "brings Graphviz along), or install Graphviz (Debian/Ubuntu: apt-get install "
            "graphviz, Fedora: dnf install graphviz, macOS: brew install graphviz), or "
            "ask for fmt='dot' or 'mermaid', which need no program"
        )


class LayoutTimeoutError(RenderError, TimeoutError):
    """Graphviz took longer than allowed to lay the picture out."""

    def __init__(self, fmt: str, timeout: float, nodes: int, edges: int, engine: str) -> None:
        self.fmt = fmt
        self.timeout = timeout
        self.nodes = nodes
        self.edges = edges
        super().__init__(
            f"drawing the graph as {fmt} ({nodes} jobs, {edges} edges) took longer than "
            f"{timeout:g}s in {engine}, so it was stopped; draw less with "
            "focus='failures' (or focus='SomeJob'), or max_nodes=200, or drop "
            "all_edges=True if it was given; timeout= allows more time "
            "(command line: --focus, --max-nodes, --timeout)"
        )


class GraphvizFailedError(RenderError):
    """The ``dot`` program ran but failed."""

    def __init__(self, fmt: str, returncode: int, stderr: str) -> None:
        self.fmt = fmt
        self.returncode = returncode
        self.stderr = stderr
        said = stderr.strip() or "no message"
        super().__init__(f"Graphviz 'dot -T{fmt}' failed (exit {returncode}): {said}")


class NoImageViewerError(RenderError):
    """No display, or no program to show an image with."""

    def __init__(self, reason: str, *, no_display: bool = False) -> None:
        self.reason = reason
        self.no_display = no_display
        if no_display:
            fix = (
                "run it where a desktop session is (or set DISPLAY), or write the "
                "picture to a file with write_graph(open('graph.png', 'wb'))"
            )
        else:
            fix = (
                "install an image viewer (Debian/Ubuntu: apt-get install xdg-utils eog, "
                "or imagemagick for 'display') or write the picture to a file with "
                "write_graph(open('graph.png', 'wb'))"
            )
        super().__init__(f"cannot show the graph: {reason}; {fix}")
