"""Receive a response body into reusable buffers; hash them on another thread.

The download's hot loop: the calling thread reads the socket straight into
one of a few preallocated buffers (no new ``bytes`` per chunk, so no fresh
pages to fault in and zero) and writes the buffer to the file, while a
:class:`HashRing` worker hashes the same buffer.  hashlib and ``os.write``
both release the GIL, so on two cores the sha256 (the largest single cost)
runs beside the copying instead of after it, and the work is split about
evenly between the two threads.
"""

from __future__ import annotations

import http.client
import queue
import threading
from collections.abc import Callable

import requests
import urllib3

__all__ = ["NETWORK_ERRORS", "HashRing", "body_readinto", "read_some", "write_all"]

#: What reading the body raises when the connection breaks.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError, http.client.HTTPException, requests.RequestException,
    urllib3.exceptions.HTTPError)


def body_readinto(response: requests.Response) -> Callable[[memoryview], int]:
    """A ``readinto(buffer) -> bytes read`` for ``response``'s body (0 at its end).

    This is the standard library's ``http.client.HTTPResponse.readinto``
    under urllib3: it fills the buffer from the socket without an
    intermediate copy and keeps track of ``Content-Length`` and chunked
    framing, so the connection goes back to the pool when the body is done.
    A read that a broken connection ends early returns what did arrive, so
    a resume is exact.  The bytes are stored as sent, never decoded: a
    server that labels a ``.gz`` image ``Content-Encoding: gzip`` still
    gets the file its checksum is about (as ``curl`` without
    ``--compressed`` does).  Another transport under requests is read
    through urllib3, the same way.
    """
    raw = response.raw
    plain = getattr(raw, "_fp", None)
    if isinstance(plain, http.client.HTTPResponse):
        return plain.readinto

    def copied(buffer: memoryview) -> int:
        data = raw.read(len(buffer), decode_content=False)
        buffer[:len(data)] = data
        return len(data)

    return copied


def read_some(readinto: Callable[[memoryview], int],
              buffer: memoryview) -> tuple[int, BaseException | None]:
    """``(bytes read into buffer, the error that ended the body or None)``.

    On a broken chunked body http.client raises ``IncompleteRead`` after
    filling part of the buffer; its count is kept, so nothing that arrived
    is dropped.
    """
    try:
        return readinto(buffer), None
    except NETWORK_ERRORS as err:
        partial = err.partial if isinstance(err, http.client.IncompleteRead) else b""
        return len(partial), err


def write_all(fd_write: Callable[[memoryview], int | None], data: memoryview) -> None:
    """Write all of ``data`` with ``fd_write`` (an unbuffered file's ``write``)."""
    while data:
        wrote = fd_write(data)
        if wrote is None:  # a non-blocking file with no room; files here block
            raise BlockingIOError("the file accepted no bytes")
        data = data[wrote:]


class HashRing:
    """``count`` buffers of ``size`` bytes going round between two threads.

    :meth:`take` hands the caller a free buffer (waiting for one while all
    are queued); :meth:`give` queues its first ``n`` bytes for ``digest``
    (say ``hasher.update``), which runs on a worker thread, in order; the
    buffer comes back to the free list after that.  The caller may go on
    reading the buffer it gave (to write it) until its next :meth:`take`:
    only the caller takes buffers.  An exception in ``digest`` is raised by
    the next :meth:`take` or by :meth:`close`; the worker keeps returning
    buffers, so the caller never waits forever.
    """

    def __init__(self, digest: Callable[[memoryview], object], size: int,
                 count: int = 8) -> None:
        if size < 1 or count < 1:
            raise ValueError(f"HashRing needs size and count >= 1, not {size}, {count}")
        self._digest = digest
        self.error: BaseException | None = None
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(memoryview(bytearray(size)))
        self._thread = threading.Thread(target=self._work, name="dojobber-download-hash",
                                        daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            buffer, n = item
            if self.error is None:
                try:
                    self._digest(buffer[:n])
                except BaseException as err:  # handed to the caller
                    self.error = err
            self._free.put(buffer)

    def take(self) -> memoryview:
        """A free buffer; raises the worker's error if ``digest`` failed."""
        buffer = self._free.get()
        if self.error is not None:
            self._free.put(buffer)
            raise self.error
        return buffer

    def give(self, buffer: memoryview, n: int) -> None:
        """Queue the first ``n`` bytes of ``buffer`` (from :meth:`take`)."""
        self._full.put((buffer, n))

    def close(self) -> None:
        """Wait until every queued buffer is digested; raise the error if any."""
        self.join()
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        """Wait until every queued buffer is digested (errors stay in ``error``)."""
        if self._thread.is_alive():
            self._full.put(None)
            self._thread.join()
