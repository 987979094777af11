"""What a graph picture shows, independent of the output language.

:func:`build_picture` picks the jobs to draw (all of them, only the failures
and what they block, or a capped number), and works out each job's status,
style and label lines.  :mod:`dojobber.render` turns a :class:`Picture` into
DOT or Mermaid text.  Pure: no I/O, no optional packages (networkx, which
dojobber needs anyway, is imported only for ``focus`` and ``max_nodes``).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..graph import JobGraph
from ..job import DummyJob
from ..results import JobResult, JobStatus, RunOutcome, RunResult, plan_line

__all__ = [
    "CONTROL_CHARS",
    "DEFAULT_MAX_NODES",
    "FOCUS_FAILURES", "STYLES", "NodeView", "Picture", "Style", "build_picture"]

#: Control characters, replaced by a space in every label.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
#: ``focus=`` value drawing the failed jobs, the jobs they block and the
#: path from them up to the root.
FOCUS_FAILURES = "failures"
#: Jobs a picture draws unless ``max_nodes`` says otherwise (None: all).
#: dot lays out 1 000 jobs of any shape benchmarked in about a second; a
#: whole 5 000-job graph can take it half a minute or more, and is too
#: dense to read anyway (``benchmarks/README.md``, "Rendering").
DEFAULT_MAX_NODES = 1000

#: Exception text in a node label: wrapped at this width, at most this many
#: lines (the SVG tooltip has all of it).
NOTE_WIDTH = 64
NOTE_LINES = 2


class Style(NamedTuple):
    """How a job of one status is drawn, and what the legend says about it."""

    fill: str
    border: str
    font: str
    legend: str
    penwidth: float = 1.0
    dashed: bool = False


#: One style per status.  Success is green (pale: nothing had to be done;
#: blue-green: a Run made it hold), failure saturated red, blocked orange,
#: not reached grey and dashed.  Fill lightness differs too, so the picture
#: still reads in greyscale and for red-green colour blindness.
STYLES: dict[JobStatus, Style] = {
    JobStatus.OK: Style("#d9f0d3", "#5aae61", "#1b3d1b", "ok: held already (first Check passed)"),
    JobStatus.CHANGED: Style(
        "#99d8c9", "#238b45", "#0b3322", "changed: made to hold (passed after Run)"
    ),
    JobStatus.FAILED: Style(
        "#d7301f", "#7f0000", "#ffffff", "failed: every try failed", penwidth=2.0
    ),
    JobStatus.BLOCKED: Style(
        "#fdd49e", "#d94801", "#5a2800", "blocked: a dependency failed", dashed=True
    ),
    JobStatus.PENDING: Style(
        "#f5f5f5", "#969696", "#525252", "not reached in this run", dashed=True
    ),
    # Check mode: purple, apart from every colour above (and mid-light, so
    # it reads apart from ok and failed in greyscale too).
    JobStatus.WOULD_RUN: Style(
        "#bcbddc", "#54278f", "#2a1050", "would run: Check failed (dry run)", penwidth=2.0
    ),
    JobStatus.NOT_CHECKED: Style(
        "#efedf5", "#807dba", "#3f007d", "not checked: depends on a change (dry run)",
        dashed=True,
    ),
}
#: Legend text for PENDING when there is no run at all.
NOT_RUN_LEGEND = "not run yet"
#: Legend text for FAILED in a no_act run: the job could not be checked.
NO_ACT_FAILED_LEGEND = "could not be checked (constructor, Plan() or TIMEOUT failed)"
#: Legend text for the node shape of dummy jobs.
DUMMY_LEGEND = "dummy job (only groups its dependencies)"
#: Legend text saying which way edges point.
EDGE_MEANING = "B depends on A: the work flows upward, the root is on top"
EDGE_LEGEND = f"A \u2192 B: {EDGE_MEANING}"


@dataclass
class NodeView:
    """One job as drawn."""

    index: int
    name: str
    status: JobStatus
    dummy: bool
    #: Label lines below the name (exception, tries, durations, ...).
    lines: list[str] = field(default_factory=list)
    #: Longer text for a hover tooltip (SVG).
    tooltip: str = ""


@dataclass
class Picture:
    """The jobs and edges to draw, with the title, legend and notes."""

    nodes: list[NodeView]
    #: (dependency index, dependant index) pairs, both drawn.
    edges: list[tuple[int, int]]
    title: str
    #: Says what was left out, or "" when everything is drawn.
    note: str
    #: (status, legend text) of each status drawn, in legend order.
    legend: list[tuple[JobStatus, str]]
    has_dummy: bool
    #: Jobs in the whole graph.
    total: int
    #: Dependencies not drawn because a longer path already shows them.
    implied_edges: int = 0


def build_picture(
    graph: JobGraph,
    result: RunResult | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = None,
    details: bool = False,
    all_edges: bool = False,
) -> Picture:
    """Work out what to draw; see :func:`dojobber.render.render` for options."""
    if max_nodes is not None and (
        isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1
    ):
        raise ValueError(f"max_nodes={max_nodes!r}: give a whole number >= 1 (or None)")
    statuses = _statuses(graph, result)
    keep, why = _select(graph, statuses, focus)
    keep, capped = _cap(graph, statuses, keep, max_nodes)
    shown = set(keep)
    nodes = [
        _node(graph, i, statuses[i], result, details, shown) for i in sorted(keep)
    ]
    order = sorted(keep)
    implied = 0
    if all_edges or len(order) > REDUCE_MAX_NODES:
        edges = [(d, i) for i in order for d in graph.deps[i] if d in shown]
    else:
        edges, implied = transitive_reduction(order, graph.deps, shown)
    left_out = Counter(statuses[i] for i in range(len(graph)) if i not in shown)
    drawn = Counter(n.status for n in nodes)
    legend = [(s, _legend_text(s, result)) for s in _ORDER if drawn[s]]
    return Picture(
        nodes=nodes,
        edges=edges,
        title=_title(graph, result),
        note=_note(len(graph), len(nodes), left_out, why, capped, implied, max_nodes),
        legend=legend,
        has_dummy=any(n.dummy for n in nodes),
        total=len(graph),
        implied_edges=implied,
    )


#: Above this many drawn jobs the reduction is skipped (its bit sets grow
#: with the square of the jobs drawn); such pictures need max_nodes anyway.
REDUCE_MAX_NODES = 20_000


def transitive_reduction(
    order: list[int], deps: Sequence[Sequence[int]], shown: set[int]
) -> tuple[list[tuple[int, int]], int]:
    """The edges among ``shown`` jobs that no longer path implies, and how
    many were dropped.

    ``order`` lists the shown jobs dependencies first (graph indices grow
    that way).  Each job keeps the set of jobs below it as the bits of an
    int; an edge to a dependency is implied when another dependency already
    reaches it.  A job that depends on A and on B, where B needs A, is
    drawn with the edge to B only: what it depends on is unchanged, the
    picture loses the long edges that make dot slow and the drawing busy.
    """
    below: dict[int, int] = {}
    edges: list[tuple[int, int]] = []
    implied = 0
    for i in order:
        mine = [d for d in deps[i] if d in shown]
        via = 0
        for d in mine:
            via |= below[d]
        reach = via
        for d in mine:
            if (via >> d) & 1:
                implied += 1
            else:
                edges.append((d, i))
            reach |= 1 << d
        below[i] = reach
    return edges, implied


_ORDER = [JobStatus.OK, JobStatus.CHANGED, JobStatus.WOULD_RUN, JobStatus.NOT_CHECKED,
          JobStatus.FAILED, JobStatus.BLOCKED, JobStatus.PENDING]


def _statuses(graph: JobGraph, result: RunResult | None) -> list[JobStatus]:
    if result is None:
        return [JobStatus.PENDING] * len(graph)
    jobs = result.jobs
    pending = JobStatus.PENDING
    return [jobs[name].status if name in jobs else pending for name in graph.names]


def _select(graph: JobGraph, statuses: list[JobStatus], focus: str | None) -> tuple[list[int], str]:
    """Jobs to draw before any cap, and why others are missing."""
    if focus is None:
        return list(range(len(graph))), ""
    import networkx

    nx_graph = graph.nx
    names = graph.names
    index = graph.index
    if focus == FOCUS_FAILURES:
        failed = [names[i] for i, s in enumerate(statuses) if s is JobStatus.FAILED]
        if not failed:
            return [len(graph) - 1], "no job failed"
        # Edges point job -> dependency, so what a failed job blocks (and the
        # path to the root) is everything that reaches it: walk edges backwards.
        keep = set(failed)
        keep.update(u for u, *_ in networkx.edge_bfs(nx_graph, failed, orientation="reverse"))
        return sorted(index[n] for n in keep), "not on a failure's path to the root"
    i = graph.lookup(focus)
    keep = {focus} | networkx.descendants(nx_graph, focus) | networkx.ancestors(nx_graph, focus)
    return sorted(index[n] for n in keep), f"unrelated to {names[i]}"


#: Among jobs as near to the root, which a max_nodes cap keeps first.
_RANK = {
    JobStatus.FAILED: 0,
    JobStatus.BLOCKED: 1,
    JobStatus.CHANGED: 2,
    JobStatus.WOULD_RUN: 2,
    JobStatus.PENDING: 3,
    JobStatus.OK: 3,
    JobStatus.NOT_CHECKED: 3,
}


def _cap(
    graph: JobGraph, statuses: list[JobStatus], keep: list[int], max_nodes: int | None
) -> tuple[list[int], bool]:
    """Keep at most ``max_nodes`` jobs.

    First the root and the failed jobs, then the shortest path from each
    failure up to the root (so a failure is drawn where it hurts), then the
    other blocked jobs, then the rest nearest to the root first (so what is
    drawn hangs together), changed before ok at the same depth.
    """
    if max_nodes is None or len(keep) <= max_nodes:
        return keep, False
    import networkx

    names = graph.names
    index = graph.index
    root = len(names) - 1
    # Breadth-first from the root along job -> dependency edges: the
    # shortest way down to every job, and how deep it is.
    parent = {index[c]: index[p] for c, p in networkx.bfs_predecessors(graph.nx, names[root])}
    depth = {
        index[name]: d
        for name, d in networkx.single_source_shortest_path_length(graph.nx, names[root]).items()
    }
    candidates = set(keep)
    chosen: dict[int, None] = {root: None} if root in candidates else {}
    failed = sorted(
        (i for i in keep if statuses[i] is JobStatus.FAILED), key=lambda i: (depth[i], i)
    )
    for i in failed[:max_nodes - len(chosen)]:
        chosen.setdefault(i)
    for i in failed:
        # Up from the failure along the shortest path to the root: what it
        # blocks most directly comes first.
        while i in parent and len(chosen) < max_nodes:
            i = parent[i]
            if i in candidates:
                chosen.setdefault(i)
    rest = sorted(
        (i for i in keep if i not in chosen),
        key=lambda i: (statuses[i] is not JobStatus.BLOCKED, depth[i], _RANK[statuses[i]], i),
    )
    for i in rest[: max(0, max_nodes - len(chosen))]:
        chosen.setdefault(i)
    return sorted(chosen), True


def _node(
    graph: JobGraph,
    i: int,
    status: JobStatus,
    result: RunResult | None,
    details: bool,
    shown: set[int],
) -> NodeView:
    name = graph.names[i]
    view = NodeView(i, name, status, issubclass(graph.classes[i], DummyJob))
    job = result.jobs.get(name) if result is not None else None
    tip = [f"{name}: {_legend_text(status, result)}"]
    if job is not None and job.exception is not None and status is JobStatus.FAILED:
        kind = type(job.exception).__name__
        text = str(job.exception).strip()
        first = text.splitlines()[0] if text else ""
        line = f"{kind}: {first}" if first else kind
        view.lines.extend(_wrap(line))
        tip.append(f"{kind}: {text}" if text else kind)
    elif job is not None and status is JobStatus.WOULD_RUN and job.plan:
        view.lines.extend(_wrap(f"would: {plan_line(job.plan)}"))
        tip.append(f"would: {job.plan.strip()}")
    if details and job is not None and job.tries:
        view.lines.extend(_details(job, graph.tries[i]))
    hidden = sum(1 for d in graph.deps[i] if d not in shown)
    if hidden:
        view.lines.append(f"+{hidden} {'dependency' if hidden == 1 else 'dependencies'} not shown")
    hidden = sum(1 for d in graph.dependants[i] if d not in shown)
    if hidden:
        view.lines.append(f"needed by {hidden} {'job' if hidden == 1 else 'jobs'} not shown")
    view.tooltip = "\n".join(tip)
    return view


def _wrap(text: str) -> list[str]:
    lines = textwrap.wrap(text, NOTE_WIDTH, break_on_hyphens=False) or [text]
    if len(lines) > NOTE_LINES:
        lines = lines[:NOTE_LINES]
        lines[-1] = lines[-1][: NOTE_WIDTH - 1] + "\u2026"
    return lines


def _details(job: JobResult, max_tries: int) -> list[str]:
    """Tries used and time spent: one line in all, one per phase."""
    head = f"tries {job.tries}/{max_tries}"
    if job.lost_attempts:
        head += f" ({job.lost_attempts} lost with their worker)"
    durations = job.durations
    if not durations:
        return [head]
    phases = " \u00b7 ".join(f"{phase} {_seconds(t)}" for phase, t in durations.items())
    return [f"{head} \u00b7 {_seconds(job.duration)}", phases]


def _seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1e6:.2g} \u00b5s"
    if value < 1:
        return f"{value * 1000:.2g} ms"
    if value < 120:
        return f"{value:.3g} s"
    return f"{value / 60:.3g} min"


def _legend_text(status: JobStatus, result: RunResult | None) -> str:
    if status is JobStatus.PENDING and result is None:
        return NOT_RUN_LEGEND
    if status is JobStatus.FAILED and result is not None and result.no_act:
        return NO_ACT_FAILED_LEGEND
    return STYLES[status].legend


def _title(graph: JobGraph, result: RunResult | None) -> str:
    if result is None:
        return f"{graph.root_name}: {len(graph)} jobs, not run yet"
    counts = result.counts()
    parts = [f"{counts[s]} {s.label}" for s in _ORDER if counts[s] and s is not JobStatus.PENDING]
    verdict = result.outcome.label
    if result.no_act and result.outcome is not RunOutcome.CHANGES_PENDING:
        verdict += " (no_act: checks only)"
    return f"{result.target}: {verdict} \u2014 {', '.join(parts) or 'nothing run'}"


def _note(
    total: int, drawn: int, left_out: Counter[JobStatus], why: str, capped: bool,
    implied: int = 0, cap: int | None = None,
) -> str:
    notes = []
    if drawn != total:
        what = ", ".join(f"{left_out[s]} {s.label}" for s in _ORDER if left_out[s])
        reasons = [why] if why else []
        if capped:
            reasons.append(f"over max_nodes={cap}; max_nodes=None draws all")
        notes.append(f"showing {drawn} of {total} jobs; not shown: {what} "
                     f"({'; '.join(reasons)})")
    if implied:
        edge = "dependency" if implied == 1 else "dependencies"
        notes.append(f"{implied} {edge} implied by a longer path not drawn (all_edges draws them)")
    return "; ".join(notes)
