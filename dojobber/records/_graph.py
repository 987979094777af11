"""A stored run as a graph and a result again, for drawing it."""

from __future__ import annotations

from ..graph import JobGraph
from ..job import DummyJob, Job
from ..results import JobResult, JobStatus, RunOutcome, RunResult
from .store import RecordsError, Store

__all__ = ["StoredError", "stored_run"]


class StoredError(Exception):
    """Stands for the exception of a job in a stored run (its text only);
    :func:`stored_run` makes a subclass named like the original type."""


_ERROR_TYPES: dict[str, type[StoredError]] = {}


def _stored_error(kind: str) -> type[StoredError]:
    cls = _ERROR_TYPES.get(kind)
    if cls is None:
        cls = _ERROR_TYPES[kind] = type(kind, (StoredError,), {"__module__": __name__})
    return cls


def stored_run(store: Store, run_id: int | str) -> tuple[JobGraph, RunResult]:
    """A stored run as a :class:`JobGraph` and :class:`RunResult` (job
    classes are stand-ins named like the originals), for drawing it.

    Raises :class:`RecordsError` when the run has no stored graph.
    """
    run = store.run(run_id)
    data = store.graph_data(run.id)
    if data is None:
        raise RecordsError(
            store.path, f"run {run.id} has no stored graph",
            "runs recorded through configure(records=...) or the CLI store it",
        )
    names: list[str] = data["names"]
    dummy = set(data.get("dummy", ()))
    classes: list[type[Job]] = [
        type(name, (DummyJob if i in dummy else Job,), {"__module__": "dojobber.records.stored"})
        for i, name in enumerate(names)
    ]
    graph = JobGraph(
        root=classes[-1], classes=classes, names=names,
        deps=[tuple(d) for d in data["deps"]], tries=[1] * len(names),
        delays=[0.0] * len(names),
    )
    jobs: dict[str, JobResult] = {}
    for record in store.jobs(run.id):
        i = graph.index.get(record.name)
        if i is None:
            continue
        res = JobResult(record.name, classes[i], status=JobStatus(record.status),
                        tries=record.tries, index=i)
        if record.exception:
            kind, sep, message = record.exception.partition(": ")
            if not sep or not kind.isidentifier():
                kind, message = "Exception", record.exception
            res.exception = _stored_error(kind)(message)
            res._traceback = record.traceback
        res.plan = record.plan
        jobs[record.name] = res
    for i, name in enumerate(names):
        jobs.setdefault(name, JobResult(name, classes[i], index=i))
    result = RunResult(
        graph=graph, jobs=jobs, target=run.target, no_act=run.no_act, started=run.started,
        finished=run.finished or run.started,
        interrupted=run.verdict is RunOutcome.INTERRUPTED,
        stopped=run.verdict is RunOutcome.STOPPED,
    )
    return graph, result
