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
    NoImageViewerError,
    RenderError,
    UnsupportedFormatError,
)
from .dot import import_graphviz, to_dot
from .mermaid import to_mermaid
from .picture import FOCUS_FAILURES, STYLES
from .viewer import open_image, viewer_command

__all__ = [
    "FOCUS_FAILURES",
    "STYLES",
    "TEXT_FORMATS",
    "GraphvizFailedError",
    "GraphvizNotFoundError",
    "GraphvizPackageMissingError",
    "GraphvizUnavailableError",
    "NoImageViewerError",
    "RenderError",
    "UnsupportedFormatError",
    "formats",
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
    max_nodes: int | None = None,
    details: bool = False,
    legend: bool = True,
) -> bytes:
    """Draw ``graph`` coloured by ``result`` (plain structure when None).

    fmt: ``png``, ``svg``, ``pdf`` or any other format of the ``dot``
    program; ``dot``/``gv`` (DOT source) and ``mermaid``/``mmd`` are text
    (UTF-8) and need no program.
    focus: ``"failures"`` draws only the failed jobs, the jobs they block and
    their path up to the root; a job name draws that job, what it depends on
    and what depends on it.  None draws everything.
    max_nodes: draw at most this many jobs (failures and the jobs nearest the
    root first); the legend says what was left out.
    details: add tries used and time spent per phase to each job's label.
    legend: add the title and colour legend under the graph.

    Raises :class:`UnsupportedFormatError` for an unknown format,
    :class:`GraphvizNotFoundError` when an image needs ``dot`` and it is not
    installed, :class:`GraphvizPackageMissingError` without the ``graphviz``
    package (extra ``graph``), :class:`GraphvizFailedError` when ``dot``
    fails.
    """
    fmt = _normalise(fmt)
    options: dict[str, Any] = dict(
        focus=focus, max_nodes=max_nodes, details=details, legend=legend
    )
    if fmt in MERMAID_FORMATS:
        return to_mermaid(graph, result, **options).encode()
    graphviz = import_graphviz(fmt)
    if fmt in DOT_FORMATS:
        return to_dot(graph, result, **options).encode()
    if fmt not in graphviz.FORMATS or fmt in _WINDOW_FORMATS:
        raise UnsupportedFormatError(fmt, formats())
    source = graphviz.Source(to_dot(graph, result, **options))
    try:
        data: bytes = source.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(fmt) from None
    except graphviz.CalledProcessError as err:
        stderr = err.stderr.decode(errors="replace") if err.stderr else ""
        raise GraphvizFailedError(fmt, err.returncode, stderr) from None
    return data


def _normalise(fmt: str) -> str:
    if not isinstance(fmt, str) or not fmt.strip():
        raise UnsupportedFormatError(repr(fmt), formats())
    return fmt.strip().lower().lstrip(".")


