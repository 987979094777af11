"""``dojobber graph``, and writing the pictures of ``dojobber run --graph``."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from ..errors import DojobberError
from ..graph import JobGraph
from ..graph import build as build_graph
from ..loader import load_root
from ..records import stored_run
from ..render import DEFAULT_MAX_NODES, DEFAULT_TIMEOUT, render
from ..results import RunResult
from ._base import EXIT_OK, cli, guarded, open_records, records_option

__all__ = ["GraphOutputError", "format_of", "graph_command", "write_picture"]


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


if TYPE_CHECKING:  # generic from click 8.2; 8.1 (still allowed) is not
    _ParamType = click.ParamType[int | None]
else:
    _ParamType = click.ParamType


class MaxNodes(_ParamType):
    """``--max-nodes``: a whole number of jobs >= 1, or ``all``."""

    name = "N|all"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "all":
            return None
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r}: give a whole number of jobs >= 1, or 'all'", param, ctx)


def write_picture(
    graph: JobGraph,
    result: RunResult | None,
    path: str,
    fmt: str | None = None,
    *,
    focus: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    details: bool = False,
    all_edges: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> str:
    """Draw and write the picture to ``path`` (``-``: stdout); return the
    format used.  Nothing is written when drawing fails."""
    kind = format_of(path, fmt) if path != "-" else (fmt or "dot")
    data = render(graph, result, kind, focus=focus, max_nodes=max_nodes, details=details,
                  all_edges=all_edges, timeout=timeout)
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


@cli.command("graph")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]", required=False)
@click.option("--run", "run_id", metavar="RUN", help="Draw a recorded run instead (id, -N, last).")
@records_option
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Picture file (.png, .svg, .pdf, .dot, .mmd ...; - for stdout).")
@click.option("-f", "--format", "fmt", metavar="FMT", help="Format, if not the extension's.")
@click.option("--focus", metavar="failures|JOB", help="Only failures, or one job's neighbourhood.")
@click.option("--max-nodes", type=MaxNodes(), default=str(DEFAULT_MAX_NODES), show_default=True,
              metavar="N|all",
              help="Draw at most this many jobs ('all': every job).")
@click.option("--details", is_flag=True, help="Tries and phase times on each job.")
@click.option("--all-edges", is_flag=True,
              help="Draw every dependency, also those a longer path implies.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds the layout may take.")
@click.option("-d", "--debug", is_flag=True, help="Tracebacks of errors.")
def graph_command(
    target: str | None, run_id: str | None, records_path: str | None, output: str,
    fmt: str | None, focus: str | None, max_nodes: int | None, details: bool,
    all_edges: bool, timeout: float, debug: bool,
) -> int:
    """Draw the graph of TARGET, or of a recorded run (--run RUN)."""
    if (target is None) == (run_id is None):
        raise click.UsageError("give either FILE_OR_MODULE[:Job] or --run RUN")

    def draw() -> int:
        result: RunResult | None = None
        if run_id is not None:
            with open_records(records_path) as store:
                graph, result = stored_run(store, run_id)
        else:
            graph = build_graph(load_root(str(target)))
        write_picture(graph, result, output, fmt, focus=focus, max_nodes=max_nodes,
                      details=details, all_edges=all_edges, timeout=timeout)
        if output != "-":
            sys.stderr.write(f"wrote {output}\n")
        return EXIT_OK

    return guarded(debug, draw)
