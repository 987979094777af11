"""Pictures of a job graph, coloured by how each job fared in a run.

:func:`to_dot` and :func:`to_mermaid` are pure: a :class:`~dojobber.JobGraph`
plus an optional :class:`~dojobber.RunResult` in, text out, no programs run.
:func:`render` also produces images (``png``, ``svg``, ``pdf``, ... anything
Graphviz's ``dot`` program writes); only that last step needs ``dot``.

Edges point from a dependency to the job that needs it (the way the work
flows); the root is drawn on top, as in upstream DoJobber's picture.  A
legend under the graph says what each colour and shape means.

DOT is built with the ``graphviz`` package (``pip install 'dojobber[graph]'``);
it is imported only when DOT or an image is asked for, so
``import dojobber`` never needs it.
"""

from __future__ import annotations

from typing import Any

from ..graph import JobGraph
from ..results import RunResult
from ._errors import (
    GraphvizFailedError,
    GraphvizNotFoundError,
    GraphvizPackageMissingError,
    GraphvizUnavailableError,
    LayoutTimeoutError,
    NoImageViewerError,
    RenderError,
    UnsupportedFormatError,
)
from ._layout import engines, lay_out
from .dot import dot_source, import_graphviz, to_dot
from .mermaid import to_mermaid
from .notebook import html_table, notebook_svg
from .picture import DEFAULT_MAX_NODES, FOCUS_FAILURES, STYLES, build_picture
from .viewer import open_image, viewer_command

__all__ = [
    "DEFAULT_MAX_NODES",
    "DEFAULT_TIMEOUT",
    "FOCUS_FAILURES",
    "STYLES",
    "TEXT_FORMATS",
    "GraphvizFailedError",
    "GraphvizNotFoundError",
    "GraphvizPackageMissingError",
    "GraphvizUnavailableError",
    "LayoutTimeoutError",
    "NoImageViewerError",
    "RenderError",
    "UnsupportedFormatError",
    "engines",
    "formats",
    "html_table",
    "notebook_svg",
    "open_image",
    "render",
    "to_dot",
    "to_mermaid",
    "viewer_command",
]

#: Formats that are text made here, needing no program: DOT and Mermaid.
DOT_FORMATS = frozenset({"dot", "gv"})
MERMAID_FORMATS = frozenset({"mermaid", "mmd"})
TEXT_FORMATS = DOT_FORMATS | MERMAID_FORMATS
#: dot's interactive outputs: they open a window instead of writing bytes.
_WINDOW_FORMATS = frozenset({"x11", "xlib", "gtk"})
#: Seconds a layout may take by default before LayoutTimeoutError.
DEFAULT_TIMEOUT = 60.0


# ----------------------------------------------------------------------
# Public API
def formats() -> list[str]:
    """Every ``fmt`` :func:`render` accepts (images need the ``dot`` program)."""
    try:
        import graphviz
    except ImportError:
        return sorted(MERMAID_FORMATS)
    return sorted((set(graphviz.FORMATS) - _WINDOW_FORMATS) | DOT_FORMATS | MERMAID_FORMATS)


def render(
    graph: JobGraph,
    result: RunResult | None = None,
    fmt: str = "png",
    *,
    focus: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    details: bool = False,
    legend: bool = True,
    all_edges: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> bytes:
    """Draw ``graph`` coloured by ``result`` (plain structure when None).

    fmt: ``png``, ``svg``, ``pdf`` or any other format of Graphviz's ``dot``;
    ``dot``/``gv`` (DOT source) and ``mermaid``/``mmd`` are text (UTF-8)
    and need no Graphviz.
    focus: ``"failures"`` draws only the failed jobs, the jobs they block and
    their path up to the root; a job name draws that job, what it depends on
    and what depends on it.  None draws everything.
    max_nodes: draw at most this many jobs (failures and the jobs nearest the
    root first); the legend says what was left out.  By default
    :data:`DEFAULT_MAX_NODES` (1 000), which any graph benchmarked lays out
    in about a second; None draws every job.
    details: add tries used and time spent per phase to each job's label.
    legend: add the title and colour legend under the graph.
    all_edges: draw every dependency; by default one that a longer path
    already implies (C needs B and A, B needs A: C -> A) is left out, which
    keeps big pictures readable and quick to lay out (the legend says how
    many were left out).
    timeout: seconds the layout may take (images only; None: no bound).

    Images are laid out with pygraphviz (extra ``graph``, which brings
    Graphviz along), else the ``dot`` program; see
    :mod:`dojobber.render._layout`.  Raises :class:`UnsupportedFormatError`
    for an unknown format, :class:`GraphvizNotFoundError` when an image is
    asked for and neither is installed, :class:`GraphvizPackageMissingError`
    without the ``graphviz`` package (extra ``graph``),
    :class:`GraphvizFailedError` when the layout fails and
    :class:`LayoutTimeoutError` when it takes longer than ``timeout``.
    """
    fmt = _normalise(fmt)
    options: dict[str, Any] = dict(
        focus=focus, max_nodes=max_nodes, details=details, legend=legend, all_edges=all_edges
    )
    if fmt in MERMAID_FORMATS:
        return to_mermaid(graph, result, **options).encode()
    graphviz = import_graphviz(fmt)
    if fmt in DOT_FORMATS:
        return to_dot(graph, result, **options).encode()
    if fmt not in graphviz.FORMATS or fmt in _WINDOW_FORMATS:
        raise UnsupportedFormatError(fmt, formats())
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"timeout={timeout!r}: give seconds > 0, or None for no bound")
    picture = build_picture(
        graph, result, focus=focus, max_nodes=max_nodes, details=details, all_edges=all_edges
    )
    source = dot_source(picture, legend=legend)
    return lay_out(
        source, fmt, nodes=len(picture.nodes), edges=len(picture.edges), timeout=timeout
    )


def _normalise(fmt: str) -> str:
    if not isinstance(fmt, str) or not fmt.strip():
        raise UnsupportedFormatError(repr(fmt), formats())
    return fmt.strip().lower().lstrip(".")


