"""Keep CPython's cyclic garbage collector from dominating big runs."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc"]

#: Allocations between young collections while a graph is built or run.  The
#: default (700) makes the collector scan the young objects of a 100 000-job
#: run over a thousand times and costs as much as the run itself; the
#: collector stays on, so cyclic garbage made by jobs is still freed.
RELAXED_THRESHOLD = 100_000


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Raise the young-generation threshold for the duration, then restore.

    Nested use is fine; the outermost restores the user's thresholds, also
    when the body raises.
    """
    before = gc.get_threshold()
    if before[0] == 0 or before[0] >= RELAXED_THRESHOLD:
        yield  # collector disabled by threshold, or already relaxed
        return
    gc.set_threshold(RELAXED_THRESHOLD, *before[1:])
    # Objects that exist now (job classes, the graph) outlive the run: move
    # them out of the collector's sight so a full collection does not scan
    # them again.  Skipped when the program manages frozen objects itself.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        gc.set_threshold(*before)
