"""A domain's serial console as a :class:`~dojobber.contrib._console.Port`:
libvirt's console stream (``virDomainOpenConsole``), which works for local
and remote URIs alike.  Opened with ``VIR_DOMAIN_CONSOLE_FORCE``, so a
``virsh console`` left open elsewhere is disconnected rather than blocking.

The stream is a *blocking* one read by a thread: a non-blocking stream
only receives data while a libvirt event loop runs (the client reads its
socket from that loop), and without one every read says "no data yet" -
which is what a first version showed on a real guest under qemu:///system.
The thread hands what it reads to :meth:`recv` through a queue; closing
aborts the stream, which ends the thread's blocking read.
"""

from __future__ import annotations

import queue
import threading

import libvirt

from ._libvirtjob import silence_libvirt_errors

__all__ = ["LibvirtConsole"]

# The reader's last recv() fails when close() aborts the stream: not news.
silence_libvirt_errors()


class LibvirtConsole:
    """The first console of ``dom`` (its serial port in the default template);
    closing it closes ``conn`` too."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain, uri: str) -> None:
        self.name = f"{dom.name()} on {uri}"
        self.conn = conn
        self.stream = conn.newStream(0)
        try:
            dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except BaseException:
            self.stream.abort()
            raise
        self._incoming: queue.Queue[bytes | BaseException] = queue.Queue()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"console {self.name}",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.stream.recv(4096)
            except libvirt.libvirtError as err:
                self._incoming.put(EOFError(err.get_error_message() or str(err)))
                return
            if not isinstance(data, bytes):
                self._incoming.put(EOFError(f"the console stream failed ({data})"))
                return
            self._incoming.put(data if data else EOFError("the console stream ended"))
            if not data:
                return

    def send(self, data: bytes) -> None:
        try:
            while data:
                sent = self.stream.send(data)
                if sent < 0:
                    raise EOFError("the console stream refused data")
                data = data[sent:]
        except libvirt.libvirtError as err:
            raise EOFError(err.get_error_message() or str(err)) from None

    def recv(self, timeout: float) -> bytes:
        try:
            item = self._incoming.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return b""
        if isinstance(item, BaseException):
            self._incoming.put(item)  # every later read sees the end too
            raise item
        return item

    def close(self) -> None:
        self._closed.set()
        try:
            self.stream.abort()
        except libvirt.libvirtError:
            pass
        finally:
            self._reader.join(timeout=5)
            self.conn.close()
