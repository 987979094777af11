"""DOT source of a picture, built with the ``graphviz`` package."""

from __future__ import annotations

import html
from typing import Any

from ..graph import JobGraph
from ..results import JobStatus, RunResult
from ._errors import GraphvizPackageMissingError
from .picture import (
    CONTROL_CHARS,
    DEFAULT_MAX_NODES,
    DUMMY_LEGEND,
    EDGE_MEANING,
    STYLES,
    NodeView,
    Picture,
    build_picture,
)

__all__ = ["BIG_GRAPH", "FONT", "dot_source", "import_graphviz", "to_dot"]

#: Above this many jobs, the picture is laid out for size rather than looks.
BIG_GRAPH = 300
#: The font every label is drawn in.
FONT = "Helvetica,Arial,sans-serif"


def to_dot(
    graph: JobGraph,
    result: RunResult | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    details: bool = False,
    legend: bool = True,
    all_edges: bool = False,
) -> str:
    """DOT source of the picture :func:`render` draws (needs the ``graphviz``
    package, not the ``dot`` program)."""
    picture = build_picture(
        graph, result, focus=focus, max_nodes=max_nodes, details=details, all_edges=all_edges
    )
    return dot_source(picture, legend=legend)


def dot_source(picture: Picture, *, legend: bool = True) -> str:
    """DOT source of a :class:`Picture` already worked out."""
    graphviz = import_graphviz("dot")
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



def import_graphviz(fmt: str) -> Any:
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


def _html(text: str) -> str:
    """Text for a Graphviz HTML-like label: entities escaped, control
    characters (newlines too) shown as one space."""
    return html.escape(CONTROL_CHARS.sub(" ", text), quote=False)
