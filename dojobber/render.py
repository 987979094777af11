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

import html
import os
import re
import shutil
import subprocess
import sys
from typing import Any

from ._picture import (
    DUMMY_LEGEND,
    EDGE_LEGEND,
    EDGE_MEANING,
    FOCUS_FAILURES,
    STYLES,
    NodeView,
    Picture,
    build_picture,
)
from .errors import DojobberError
from .graph import JobGraph
from .results import JobStatus, RunResult

__all__ = [
    "FOCUS_FAILURES",
    "STYLES",
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
]

#: Formats that are text made here, needing no program: DOT and Mermaid.
DOT_FORMATS = frozenset({"dot", "gv"})
MERMAID_FORMATS = frozenset({"mermaid", "mmd"})
TEXT_FORMATS = DOT_FORMATS | MERMAID_FORMATS
#: dot's interactive outputs: they open a window instead of writing bytes.
_WINDOW_FORMATS = frozenset({"x11", "xlib", "gtk"})
#: Drawn with speed-ups to dot's layout above this many jobs.
BIG_GRAPH = 300

FONT = "Helvetica,Arial,sans-serif"


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
    """Graphviz's ``dot`` program is not on ``PATH``."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(
            f"cannot draw the graph as {fmt}: Graphviz's 'dot' program is not on PATH; "
            "install Graphviz (Debian/Ubuntu: apt-get install graphviz, Fedora: dnf "
            "install graphviz, macOS: brew install graphviz, Windows: winget install "
            "graphviz) or ask for fmt='dot' or 'mermaid', which need no program"
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
    """No program to show an image with was found."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"cannot show the graph: {reason}; install an image viewer (Debian/Ubuntu: "
            "apt-get install xdg-utils eog, or imagemagick for 'display') or write the "
            "picture to a file with write_graph(open('graph.png', 'wb'))"
        )


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
    graphviz = _import_graphviz(fmt)
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


def to_dot(
    graph: JobGraph,
    result: RunResult | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = None,
    details: bool = False,
    legend: bool = True,
) -> str:
    """DOT source of the picture :func:`render` draws (needs the ``graphviz``
    package, not the ``dot`` program)."""
    graphviz = _import_graphviz("dot")
    picture = build_picture(graph, result, focus=focus, max_nodes=max_nodes, details=details)
    graph_attr = {
        "rankdir": "BT",
        "fontname": FONT,
        "bgcolor": "white",
        "nodesep": "0.25",
        "ranksep": "0.45",
        "outputorder": "edgesfirst",
        "labelloc": "b",
        "labeljust": "l",
    }
    if len(picture.nodes) > BIG_GRAPH:
        # dot's default layout is superlinear; these keep thousands of jobs
        # to seconds at a small cost in edge crossings.
        graph_attr.update(newrank="true", mclimit="0.1", nslimit="0.1", searchsize="10")
    if legend:
        graph_attr["label"] = _dot_legend(picture)
    dot = graphviz.Digraph(
        name="dojobber",
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": "12", "margin": "0.12,0.05"},
        edge_attr={"color": "#7a7a7a", "arrowsize": "0.7"},
    )
    status_of = {node.index: node.status for node in picture.nodes}
    for node in picture.nodes:
        dot.node(f"j{node.index}", **_dot_node(node, graphviz))
    for dep, job in picture.edges:
        if status_of[dep] in (JobStatus.FAILED, JobStatus.BLOCKED):
            dot.edge(f"j{dep}", f"j{job}", color="#b30000", penwidth="1.4")
        else:
            dot.edge(f"j{dep}", f"j{job}")
    source: str = dot.source
    return source


def to_mermaid(
    graph: JobGraph,
    result: RunResult | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = None,
    details: bool = False,
    legend: bool = True,
) -> str:
    """Mermaid ``flowchart`` text of the picture (paste it into Markdown
    that renders Mermaid, e.g. on GitHub or GitLab).  Needs nothing."""
    picture = build_picture(graph, result, focus=focus, max_nodes=max_nodes, details=details)
    out = ["flowchart BT", f"    %% {_mermaid_comment(picture.title)}"]
    out.append(f"    %% {_mermaid_comment(EDGE_LEGEND)}")
    for node in picture.nodes:
        text = "<br/>".join(_mermaid_text(line) for line in [node.name, *node.lines])
        opening, closing = ('(["', '"])') if node.dummy else ('["', '"]')
        out.append(f"    j{node.index}{opening}{text}{closing}")
    for dep, job in picture.edges:
        out.append(f"    j{dep} --> j{job}")
    for status in JobStatus:
        style = STYLES[status]
        css = f"fill:{style.fill},stroke:{style.border},color:{style.font}"
        if style.penwidth != 1:
            css += f",stroke-width:{style.penwidth:g}px"
        if style.dashed:
            css += ",stroke-dasharray:5 3"
        out.append(f"    classDef {status.value} {css}")
    by_status: dict[JobStatus, list[str]] = {}
    for node in picture.nodes:
        by_status.setdefault(node.status, []).append(f"j{node.index}")
    for status, ids in by_status.items():
        for start in range(0, len(ids), 500):
            out.append(f"    class {','.join(ids[start:start + 500])} {status.value}")
    if legend:
        out.append('    subgraph legend["Legend"]')
        out.append("        direction TB")
        for status, text in picture.legend:
            out.append(f'        legend_{status.value}["{_mermaid_text(text)}"]:::{status.value}')
        if picture.has_dummy:
            out.append(f'        legend_dummy(["{_mermaid_text(DUMMY_LEGEND)}"])')
        out.append(f'        legend_edges["{_mermaid_text(EDGE_LEGEND)}"]')
        if picture.note:
            out.append(f'        legend_note["{_mermaid_text(picture.note)}"]')
        out.append("    end")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------
# Showing an image
def open_image(path: str) -> None:
    """Open the image file ``path`` in the desktop's image viewer.

    Uses ``open`` on macOS, the file association on Windows, and on other
    systems with a display ``xdg-open``, then ImageMagick's ``display``,
    ``eog`` or ``feh``.  Raises :class:`NoImageViewerError` saying what to
    install when there is no display or no viewer.
    """
    if sys.platform == "win32":  # pragma: no cover - not tested on Linux
        os.startfile(path)  # type: ignore[attr-defined]
        return
    if sys.platform == "darwin":  # pragma: no cover
        command = ["open", path]
    else:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise NoImageViewerError("no graphical display (DISPLAY is not set)")
        for viewer in ("xdg-open", "display", "eog", "feh"):
            found = shutil.which(viewer)
            if found:
                command = [found, path]
                break
        else:
            raise NoImageViewerError("none of xdg-open, display, eog or feh is on PATH")
    try:
        # The viewer keeps running on its own; do not wait for it.
        subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as err:
        raise NoImageViewerError(f"{command[0]} could not be started ({err})") from None


# ----------------------------------------------------------------------
# Helpers
def _normalise(fmt: str) -> str:
    if not isinstance(fmt, str) or not fmt.strip():
        raise UnsupportedFormatError(repr(fmt), formats())
    return fmt.strip().lower().lstrip(".")


def _import_graphviz(fmt: str) -> Any:
    try:
        import graphviz
    except ImportError:
        raise GraphvizPackageMissingError(fmt) from None
    return graphviz


def _dot_node(node: NodeView, graphviz: Any) -> dict[str, str]:
    style = STYLES[node.status]
    kinds = ["filled"] if node.dummy else ["rounded", "filled"]
    if style.dashed:
        kinds.append("dashed")
    lines = [f"<B>{_html(node.name)}</B>"]
    lines += [f'<FONT POINT-SIZE="10">{_html(line)}</FONT>' for line in node.lines]
    return {
        "label": f"<{'<BR/>'.join(lines)}>",
        "shape": "ellipse" if node.dummy else "box",
        "style": ",".join(kinds),
        "fillcolor": style.fill,
        "color": style.border,
        "fontcolor": style.font,
        "penwidth": f"{style.penwidth:g}",
        "tooltip": graphviz.escape(node.tooltip).replace("\n", "\\n"),
        "class": f"job {node.status.value}" + (" dummy" if node.dummy else ""),
    }


def _dot_legend(picture: Picture) -> str:
    rows = [f'<TR><TD COLSPAN="2" ALIGN="LEFT"><B>{_html(picture.title)}</B></TD></TR>']
    for status, text in picture.legend:
        style = STYLES[status]
        rows.append(
            f'<TR><TD BORDER="1" COLOR="{style.border}" BGCOLOR="{style.fill}" WIDTH="28">'
            f'</TD><TD ALIGN="LEFT">{_html(text)}</TD></TR>'
        )
    if picture.has_dummy:
        rows.append(f'<TR><TD>oval</TD><TD ALIGN="LEFT">{_html(DUMMY_LEGEND)}</TD></TR>')
    rows.append(f'<TR><TD>A \u2192 B</TD><TD ALIGN="LEFT">{_html(EDGE_MEANING)}</TD></TR>')
    if picture.note:
        rows.append(f'<TR><TD COLSPAN="2" ALIGN="LEFT"><I>{_html(picture.note)}</I></TD></TR>')
    table = "".join(rows)
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">'
        f'<TR><TD COLSPAN="2"> </TD></TR>{table}</TABLE>>'
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _html(text: str) -> str:
    """Text for a Graphviz HTML-like label: entities escaped, control
    characters (newlines too) shown as one space."""
    return html.escape(_CONTROL.sub(" ", text), quote=False)


_MERMAID_ESCAPES = {
    "#": "#35;",
    "&": "#amp;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "`": "#96;",
}
_MERMAID_SPECIAL = re.compile(r'[#&"<>`]')


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label, as entity codes where needed."""
    text = _CONTROL.sub(" ", text)
    return _MERMAID_SPECIAL.sub(lambda m: _MERMAID_ESCAPES[m.group()], text)


def _mermaid_comment(text: str) -> str:
    return _CONTROL.sub(" ", text)
