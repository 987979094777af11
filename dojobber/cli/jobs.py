"""``dojobber list FILE:Root``: the jobs of a graph in dependency order,
with their options and where each is defined (like ``doit list`` or
``invoke --list``), without running anything.

(The module is not named ``list``: as an attribute of the ``cli`` package
that name would hide the builtin there.)"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

import click
from rich.table import Table

from ..graph import JobGraph
from ..graph import build as build_graph
from ..job import DummyJob, Job, RunonlyJob
from ..loader import load_root
from ..records.masking import mask_secrets
from ._base import EXIT_OK, cli, guarded, stdout_console

__all__ = ["defined_at", "job_rows", "list_command"]

#: Options every job has; shown only when a job sets them.
_ENGINE_OPTIONS = ("DEPS", "TRIES", "RETRY_DELAY")


def defined_at(cls: type[Job]) -> str:
    """``file:line`` of the class statement (of the class a variant was made
    from, for variants), relative to the working directory when below it."""
    source = cls._variant_of or cls
    try:
        path = inspect.getsourcefile(source) or "?"
        line = inspect.getsourcelines(source)[1]
    except (OSError, TypeError):
        return f"{source.__module__} (no source)"
    relative = os.path.relpath(path)
    shown = path if relative.startswith("..") else relative
    return f"{shown}:{line}"


def _kind(cls: type[Job]) -> str:
    if issubclass(cls, DummyJob):
        return "dummy"
    if issubclass(cls, RunonlyJob):
        return "run-only"
    return "job"


def _options(cls: type[Job], graph: JobGraph, index: int) -> dict[str, Any]:
    """The job's own options (secret-looking ones masked; DEPS is its own
    column), its tries and retry delay as the graph will use them."""
    own = {key: value for key, value in cls.options().items() if key not in _ENGINE_OPTIONS}
    shown: dict[str, Any] = mask_secrets(own)
    shown["tries"] = graph.tries[index]
    shown["retry_delay"] = graph.delays[index]
    return shown


def job_rows(graph: JobGraph) -> list[dict[str, Any]]:
    """One dict per job, dependencies first (the order jobs can run in)."""
    rows = []
    for i, cls in enumerate(graph.classes):
        rows.append({
            "position": i + 1,
            "name": graph.names[i],
            "kind": _kind(cls),
            "depends_on": [graph.names[d] for d in graph.deps[i]],
            "options": _options(cls, graph, i),
            "defined_at": defined_at(cls),
            "doc": (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " "),
        })
    return rows


def _option_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in options.items())



@cli.command("list")
@click.argument("target", metavar="FILE_OR_MODULE[:Job]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-d", "--debug", is_flag=True, help="Tracebacks of errors.")
def list_command(target: str, as_json: bool, debug: bool) -> int:
    """List the jobs of TARGET's graph, dependencies first, with their
    options and where each is defined.  Runs nothing."""

    def show() -> int:
        graph = build_graph(load_root(target))
        rows = job_rows(graph)
        console = stdout_console()
        if as_json:
            print(json.dumps({"root": graph.root_name, "jobs": rows}, indent=2, default=repr))
            return EXIT_OK
        table = Table(title=f"{graph.root_name}: {len(rows)} jobs, dependencies first",
                      title_justify="left", box=None, padding=(0, 1), pad_edge=False,
                      header_style="bold")
        for name in ("#", "Job", "Kind", "Depends on", "Options", "Defined at"):
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(str(row["position"]), row["name"], row["kind"],
                          ", ".join(row["depends_on"]), _option_text(row["options"]),
                          row["defined_at"])
        console.print(table)
        return EXIT_OK

    return guarded(debug, show)
