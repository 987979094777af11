"""Mermaid source of a picture (text; needs no program)."""

from __future__ import annotations

import re

from ..graph import JobGraph
from ..results import JobStatus, RunResult
from .picture import (
    CONTROL_CHARS,
    DEFAULT_MAX_NODES,
    DUMMY_LEGEND,
    EDGE_LEGEND,
    STYLES,
    build_picture,
)

__all__ = ["to_mermaid"]


def to_mermaid(
    graph: JobGraph,
    result: RunResult | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    details: bool = False,
    legend: bool = True,
    all_edges: bool = False,
) -> str:
    """Mermaid ``flowchart`` text of the picture (paste it into Markdown
    that renders Mermaid, e.g. on GitHub or GitLab).  Needs nothing."""
    picture = build_picture(
        graph, result, focus=focus, max_nodes=max_nodes, details=details, all_edges=all_edges
    )
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
    text = CONTROL_CHARS.sub(" ", text)
    return _MERMAID_SPECIAL.sub(lambda m: _MERMAID_ESCAPES[m.group()], text)


def _mermaid_comment(text: str) -> str:
    return CONTROL_CHARS.sub(" ", text)
