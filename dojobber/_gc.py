"""Keep CPython's cyclic garbage collector from dominating big runs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc"]

#: Allocations between young collections while a graph is built or run.  The
#: default (700) makes the collector scan the young objects of a 100 000-job
#: run over a thousand times and costs as much as the run itself; the
#: collector stays on, so cyclic garbage made by jobs is still freed.
RELAXED_THRESHOLD = 100_000
#: For a run of many jobs, allocations allowed per job: a finished job keeps
#: about four tracked objects (its result, phase list, exception), so a run
#: below this many per job goes without a young collection that would only
#: scan results that live on anyway.  Cyclic garbage made by jobs waits for
#: collection at most this many objects per job.
PER_JOB = 8
#: Upper bound of the threshold however big the run.
MAX_THRESHOLD = 4_000_000


@contextmanager
def relaxed_gc(jobs: int = 0, *, no_garbage: bool = False) -> Iterator[None]:
    """Raise the young-generation threshold for the duration, then restore.

    ``jobs``: how many jobs the body runs; a big run gets a higher threshold
    (:data:`PER_JOB` each, at most :data:`MAX_THRESHOLD`).  ``no_garbage``:
    the body runs no job code and keeps what it makes (the graph walk), so a
    young collection would find nothing: the threshold is the maximum.
    Nested use is fine; the outermost restores the user's thresholds, also
    when the body raises.
    """
    before = gc.get_threshold()
    threshold = MAX_THRESHOLD if no_garbage else \
        max(RELAXED_THRESHOLD, min(PER_JOB * jobs, MAX_THRESHOLD))
    if before[0] == 0 or before[0] >= threshold:
        yield  # collector disabled by threshold, or already relaxed
        return
    gc.set_threshold(threshold, *before[1:])
    # Objects that exist now (job classes, the graph) outlive the run: move
    # them out of the collector's sight so a full collection does not scan
    # them again.  Skipped when the program manages frozen objects itself.
    global _frozen_by_us
    with _lock:
        freeze = _may_freeze()
        if freeze:
            _frozen_by_us += 1
            gc.freeze()
    try:
        yield
    finally:
        if freeze:
            # What the body made and still holds (a run's results) moves to
            # the oldest generation without a young collection scanning it
            # first: freeze() then unfreeze() sends everything to the oldest
            # generation.  Cyclic garbage among it (at most a threshold's
            # worth) is freed by the next full collection.
            with _lock:
                gc.freeze()
                gc.unfreeze()
                _frozen_by_us -= 1
        gc.set_threshold(*before)


_lock = threading.Lock()
#: relaxed_gc blocks (in any thread) whose freeze() is in force.
_frozen_by_us = 0
#: The program has frozen objects itself (gc.freeze(), as pre-fork servers
#: do): seen once, never asked again, for the question costs a walk over
#: every frozen object (gc.get_freeze_count() counts them one by one).
_program_freezes = False


def _may_freeze() -> bool:
    """Whether relaxed_gc may freeze (and later unfreeze) everything: not
    inside another block that did, nor when the program freezes objects
    itself (unfreezing would undo its freeze)."""
    global _program_freezes
    if _frozen_by_us or _program_freezes:
        return False
    if gc.get_freeze_count() == 0:  # nothing frozen: an empty list, at once
        return True
    _program_freezes = True
    return False
