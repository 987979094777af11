"""The download's buffer ring: order, reuse of buffers, errors from the worker."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from dojobber.contrib._hashring import HashRing


def test_buffers_are_digested_in_order_and_reused() -> None:
    data = os.urandom(1 << 20)
    seen: list[bytes] = []
    workers: set[str] = set()

    def digest(view: memoryview) -> None:
        workers.add(threading.current_thread().name)
        seen.append(bytes(view))

    ring = HashRing(digest, 4096, count=3)
    buffers = set()
    for start in range(0, len(data), 3000):  # pieces shorter than a buffer
        buffer = ring.take()
        buffers.add(id(buffer.obj))
        piece = data[start:start + 3000]
        buffer[:len(piece)] = piece
        ring.give(buffer, len(piece))
    ring.close()
    assert b"".join(seen) == data
    assert len(buffers) == 3
    assert workers == {"dojobber-download-hash"}


def test_the_ring_hashes_what_it_is_given() -> None:
    data = os.urandom(3 << 20)
    hasher = hashlib.sha256()
    ring = HashRing(hasher.update, 1 << 16)
    for start in range(0, len(data), 1 << 16):
        buffer = ring.take()
        piece = data[start:start + (1 << 16)]
        buffer[:len(piece)] = piece
        ring.give(buffer, len(piece))
    ring.close()
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_an_error_in_the_worker_reaches_the_caller_without_a_hang() -> None:
    calls = []

    def digest(view: memoryview) -> None:
        calls.append(len(view))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    ring = HashRing(digest, 16, count=2)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):
            ring.give(ring.take(), 8)
    with pytest.raises(OSError, match="No space left"):
        ring.close()
    assert calls == [8, 8]  # nothing digested after the error
    assert not ring._thread.is_alive()


def test_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="size and count"):
        HashRing(len, 0)
