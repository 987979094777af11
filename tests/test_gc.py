"""relaxed_gc: thresholds raised for a run and restored, nothing frozen or
lost afterwards."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from unittest.mock import patch

import pytest

from dojobber import _gc
from dojobber._gc import MAX_THRESHOLD, PER_JOB, RELAXED_THRESHOLD, relaxed_gc


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_threshold_grows_with_the_run_and_is_restored() -> None:
    seen = []
    for jobs in (0, 1_000, 100_000, 10**9):
        with relaxed_gc(jobs):
            seen.append(gc.get_threshold()[0])
        assert gc.get_threshold() == (700, 10, 10)
    assert seen == [RELAXED_THRESHOLD, RELAXED_THRESHOLD, PER_JOB * 100_000, MAX_THRESHOLD]
    with relaxed_gc(no_garbage=True):
        assert gc.get_threshold()[0] == MAX_THRESHOLD


def test_restored_when_the_body_raises_and_nested_use_keeps_the_outer() -> None:
    with pytest.raises(ValueError), relaxed_gc(50_000):
        with relaxed_gc(10):
            assert gc.get_threshold()[0] == PER_JOB * 50_000
        raise ValueError
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_disabled_or_higher_user_threshold_is_left_alone() -> None:
    gc.set_threshold(0)
    with relaxed_gc(10**6):
        assert gc.get_threshold()[0] == 0
    gc.set_threshold(MAX_THRESHOLD + 1)
    with relaxed_gc(10**6):
        assert gc.get_threshold()[0] == MAX_THRESHOLD + 1


def test_objects_made_inside_end_in_the_oldest_generation_and_cycles_are_freed() -> None:
    gc.collect()
    with relaxed_gc():
        kept = [Node() for _ in range(100)]
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle that becomes garbage
        probe = weakref.ref(a)
        del a, b
    assert gc.get_freeze_count() == 0
    assert gc.get_count()[0] < 100  # not waiting in the young generation
    assert probe() is not None  # freed only by a full collection
    gc.collect()
    assert probe() is None
    assert all(isinstance(node, Node) for node in kept)


@pytest.fixture
def program_freezes() -> Iterator[None]:
    """The program froze what exists (as a pre-fork server does)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        _gc._program_freezes = False  # forget it, for the tests that follow


def test_a_program_that_freezes_objects_itself_keeps_them_frozen() -> None:
    mine = Node()
    gc.freeze()
    try:
        with relaxed_gc():
            made = Node()
        # Frozen objects are in no generation that get_objects() lists (their
        # count may drop meanwhile as frozen temporaries are freed).
        listed = gc.get_objects()
        assert not any(obj is mine for obj in listed)
        assert any(obj is made for obj in listed)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        _gc._program_freezes = False


def test_frozen_objects_are_counted_once_not_per_run(program_freezes: None) -> None:
    # Counting frozen objects walks them all: a program that froze a
    # million pays that once, not on every configure() and run.
    with patch.object(gc, "get_freeze_count", wraps=gc.get_freeze_count) as count:
        for jobs in (10, 100_000, 10):
            with relaxed_gc(jobs):
                pass
    assert count.call_count == 1
    assert gc.get_freeze_count() > 0  # still the program's


def test_nested_blocks_freeze_once() -> None:
    with patch.object(gc, "freeze", wraps=gc.freeze) as freeze:
        with relaxed_gc(10), relaxed_gc(no_garbage=True):
            assert gc.get_threshold()[0] == MAX_THRESHOLD
        assert freeze.call_count == 2  # the outer block's, at its start and its end
    assert gc.get_freeze_count() == 0
    assert not _gc._program_freezes  # its own freeze is not taken for the program's
