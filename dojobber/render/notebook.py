"""What a Jupyter cell shows for a :class:`~dojobber.RunResult` or a
:class:`~dojobber.DoJobber`: a compact HTML table and the picture.

The picture is laid out with a time bound (:data:`NOTEBOOK_TIMEOUT`) and at
most :data:`NOTEBOOK_MAX_NODES` jobs, so displaying a result never holds a
notebook for more than a couple of seconds; when it would, the cell shows
the table and says how to draw the picture.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..results import JobStatus, plan_line
from ._errors import LayoutTimeoutError, RenderError

if TYPE_CHECKING:
    from ..graph import JobGraph
    from ..results import RunResult

__all__ = ["NOTEBOOK_MAX_NODES", "NOTEBOOK_TIMEOUT", "html_table", "notebook_svg"]

#: Seconds a notebook picture may take to lay out.
NOTEBOOK_TIMEOUT = 2.0
#: Most jobs a notebook picture draws (failures and the root come first).
NOTEBOOK_MAX_NODES = 300
#: Failed jobs listed by name in the table.
LISTED_FAILURES = 10


def notebook_svg(graph: JobGraph, result: RunResult | None) -> tuple[str | None, str]:
    """(SVG text or None, why there is none)."""
    from . import render  # the package imports this module: import when called

    try:
        svg = render(graph, result, "svg", max_nodes=NOTEBOOK_MAX_NODES,
                     timeout=NOTEBOOK_TIMEOUT)
    except LayoutTimeoutError:
        return None, (
            f"no picture: laying it out took more than {NOTEBOOK_TIMEOUT:g}s; draw it with "
            "dojobber.render.render(..., focus='failures') or max_nodes="
        )
    except RenderError as err:
        return None, f"no picture: {err}"
    return svg.decode(), ""


def html_table(graph: JobGraph, result: RunResult | None, svg: str | None, why: str) -> str:
    """The compact HTML of a run (or of a graph before any run)."""
    esc = html.escape
    if result is None:
        head = f"<b>{esc(graph.root_name)}</b>: {len(graph)} jobs, not run yet"
        rows = ""
    else:
        head = esc(result.summary())
        counts = result.counts()
        cells = "".join(
            f"<td>{esc(status.label)}</td><td style='text-align:right'>{counts[status]}</td>"
            for status in JobStatus if counts[status]
        )
        rows = f"<table><tr>{cells}</tr></table>"
        failed = result.failed() + result.would_run()  # (a dry run: what would run)
        if failed:
            items = []
            for job in failed[:LISTED_FAILURES]:
                text = _first_line(job.exception)
                if job.plan:
                    text = f"would: {plan_line(job.plan)}"
                items.append(f"<li><b>{esc(job.name)}</b> {esc(text)}</li>")
            more = len(failed) - LISTED_FAILURES
            if more > 0:
                items.append(f"<li>and {more} more</li>")
            rows += f"<ul>{''.join(items)}</ul>"
    picture = svg if svg is not None else f"<p><i>{esc(why)}</i></p>"
    return f"<div class='dojobber'><p>{head}</p>{rows}{picture}</div>"


def _first_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
