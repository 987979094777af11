"""Live updates: a run written by another process, followed in the page.

One :class:`Watcher` per server polls the records' change marker (SQLite's
``PRAGMA data_version``, changed by every commit of another connection;
PostgreSQL's ``NOTIFY`` sent by every records write, heard by a connection
that ``LISTEN``s) ten times a second, and wakes the open event streams when
something was written; every two seconds it also marks runs of dead
processes on this host ``interrupted``.  Each stream (server-sent events,
``/runs/ID/events``) has a :class:`Tracker` that knows what its page shows
and sends only what changed: jobs that finished, the run's counts and
outcome, new log lines.  The first event brings the page up to date with
what was written between its rendering and the stream's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import anyio.to_thread

from ..records import Browsable, RecordsError, open_store
from ._data import NotFoundError, job_dict, job_url, live_counts, log_dicts, run_dict

__all__ = ["Tracker", "Watcher", "browsable"]


def browsable(path: str) -> Browsable:
    """The records at ``path``, opened for the web view."""
    store = open_store(path)
    if not isinstance(store, Browsable):
        store.close()
        raise RecordsError(path, f"the {type(store).__name__} backend cannot be browsed",
                           "the web view reads records backends that offer Browsable")
    return store


class Watcher:
    """Notices commits to the records database at ``path``."""

    def __init__(self, path: str, interval: float = 0.1, reap_every: float = 2.0) -> None:
        self.path = path
        self.interval = interval
        self.reap_every = reap_every
        #: Goes up by one each time a commit by another connection is seen.
        self.generation = 0
        self._changed: asyncio.Condition | None = None
        self._store: Browsable | None = None

    def _look(self, reap: bool) -> int:
        if self._store is None:
            self._store = browsable(self.path)
        reaper = getattr(self._store, "reap", None)
        if reap and reaper is not None:
            reaper()
        return self._store.change_marker()

    async def run(self) -> None:
        """Poll until cancelled."""
        self._changed = asyncio.Condition()
        version = None
        next_reap = 0.0
        try:
            while True:
                now = time.monotonic()
                reap = now >= next_reap
                if reap:
                    next_reap = now + self.reap_every
                try:
                    seen = await anyio.to_thread.run_sync(self._look, reap)
                except (RecordsError, OSError, Exception):  # keep watching a broken file
                    seen = -1
                if seen != version:
                    version = seen
                    async with self._changed:
                        self.generation += 1
                        self._changed.notify_all()
                await asyncio.sleep(self.interval)
        finally:
            if self._store is not None:
                self._store.close()

    async def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation differs from ``seen`` (or ``timeout``
        seconds passed); return the generation."""
        if self._changed is None or self.generation != seen:
            return self.generation
        async with self._changed:
            if self.generation == seen:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        return self.generation


class Tracker:
    """What one open page of run ``run_id`` (or of its job ``job``) has
    seen, and the differences since."""

    def __init__(self, run_id: str, job: str | None = None, logs_after: int = 0) -> None:
        self.run_id = run_id
        self.job = job
        self.seq = logs_after
        self.known: dict[str, tuple[str, int, float | None]] = {}
        self.graph_stored: bool | None = None
        self.finished = False

    def poll(self, store: Browsable) -> dict[str, Any] | None:
        """The changes since the last call (everything, the first time), or
        None when nothing changed.  Raises :class:`NotFoundError` for no run."""
        try:
            run = store.run(self.run_id)
        except RecordsError as err:
            raise NotFoundError(err.reason) from None
        states = store.job_states(run.id)
        changed: list[dict[str, Any]] = []
        for name, state in states.items():
            if self.known.get(name) != state and (self.job is None or name == self.job):
                self.known[name] = state
                changed.append({"name": name, "status": state[0], "tries": state[1],
                                "duration": state[2], "url": job_url(run.id, name)})
        logs = log_dicts(run.id, store.log_lines(run.id, job=self.job, after=self.seq))
        if logs:
            self.seq = logs[-1]["seq"]
        stored = store.graph_data(run.id) is not None if not self.graph_stored else True
        finished = run.outcome != "running"
        if not changed and not logs and stored == self.graph_stored and not finished:
            return None
        event: dict[str, Any] = {
            "run": run_dict(run, live_counts(store, run)),
            "jobs": changed,
            "logs": logs,
            "graph_stored": stored,
            "finished": finished,
        }
        if self.job is not None and changed:
            with contextlib.suppress(RecordsError):
                event["job"] = job_dict(run.id, store.job(run.id, self.job))
        self.graph_stored = stored
        self.finished = finished
        return event
