"""A domain's serial console as a :class:`~dojobber.contrib._console.Port`:
libvirt's console stream (``virDomainOpenConsole``), which works for local
and remote URIs alike.  Opened with ``VIR_DOMAIN_CONSOLE_FORCE``, so a
``virsh console`` left open elsewhere is disconnected rather than blocking."""

from __future__ import annotations

import time

import libvirt

__all__ = ["LibvirtConsole"]


class LibvirtConsole:
    """The first console of ``dom`` (its serial port in the default template);
    closing it closes ``conn`` too."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain, uri: str) -> None:
        self.name = f"{dom.name()} on {uri}"
        self.conn = conn
        self.stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except BaseException:
            self.stream.abort()
            raise

    def send(self, data: bytes) -> None:
        while data:
            sent = self.stream.send(data)
            if sent == -2:  # would block
                time.sleep(0.02)
                continue
            if sent < 0:
                raise EOFError("the console stream refused data")
            data = data[sent:]

    def recv(self, timeout: float) -> bytes:
        end = time.monotonic() + max(0.0, timeout)
        while True:
            data = self.stream.recv(4096)
            if isinstance(data, bytes):
                if not data:
                    raise EOFError("the console stream ended")
                return data
            if data != -2:
                raise EOFError(f"the console stream failed ({data})")
            now = time.monotonic()
            if now >= end:
                return b""
            time.sleep(min(0.05, end - now))

    def close(self) -> None:
        try:
            self.stream.finish()
        except libvirt.libvirtError:
            self.stream.abort()
        finally:
            self.conn.close()
