"""Port forwards from the host to a guest (user-mode networking).

:class:`~dojobber.contrib.libvirt.CreateDomain`'s ``port_forwards`` gives
the guest a NIC with user-mode networking whose TCP forwards listen on the
host (``forward_address``, 127.0.0.1 by default), in one of two ways
(option ``forward_backend``):

``slirp`` (default)
    QEMU's built-in user networking, added with libvirt's QEMU command-line
    passthrough (``<qemu:commandline>``: ``-netdev user,hostfwd=...`` and a
    virtio NIC at PCI slot 0x1e).  Works with every libvirt and QEMU that
    has slirp (Debian's does); libvirt marks such domains "tainted".
``passt``
    libvirt's ``<interface type='user'>`` with ``<backend type='passt'/>``
    and ``<portForward>``, for libvirt versions that accept it (Debian 12's
    libvirt 9.0 refuses the passt backend) and the ``passt`` package.

Either way the domain's ``<metadata>`` records the forwards, which the jobs
read when a driver keeps neither (libvirt's test driver).

:class:`~dojobber.contrib.libvirt.WaitForAddress` with ``forwarded_port``
waits until the guest answers through the forward.  The host side accepts a
TCP connection before the guest does anything (the forwarder then tries the
guest), so a connection alone proves nothing: the guest answers when it
sends something (SSH's banner) before the probe's timeout.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

__all__ = ["BACKENDS", "forward_for", "forwarding_elements", "forwards_of", "probe"]

BACKENDS = ("slirp", "passt")
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
META_NS = "https://pypi.org/project/dojobber/#port-forwards"
_NETDEV = "dojobber-net0"
_HOSTFWD = re.compile(r"hostfwd=tcp:([^:,]*):(\d+)-[^:,]*:(\d+)")


def forwarding_elements(forwards: Mapping[int, int] | None, address: str,
                        backend: str) -> tuple[str, str]:
    """(``<interface>`` element, elements for the domain's top level) of
    the forwards (host port -> guest port); empty strings without any."""
    if not forwards:
        return "", ""
    pairs = sorted((int(h), int(g)) for h, g in forwards.items())
    meta = (f"<metadata><dojobber:forwards xmlns:dojobber={quoteattr(META_NS)}>"
            + "".join(f"<dojobber:forward address={quoteattr(address)} host='{h}' guest='{g}'/>"
                      for h, g in pairs)
            + "</dojobber:forwards></metadata>")
    if backend == "passt":
        ranges = "".join(f"<portForward proto='tcp' address={quoteattr(address)}>"
                         f"<range start='{h}' to='{g}'/></portForward>" for h, g in pairs)
        return (f"<interface type='user'><backend type='passt'/>{ranges}"
                "<model type='virtio'/></interface>", meta)
    netdev = f"user,id={_NETDEV}" + "".join(f",hostfwd=tcp:{address}:{h}-:{g}"
                                            for h, g in pairs)
    args = ["-netdev", netdev, "-device", f"virtio-net-pci,netdev={_NETDEV},addr=0x1e"]
    cmdline = (f"<qemu:commandline xmlns:qemu={quoteattr(QEMU_NS)}>"
               + "".join(f"<qemu:arg value={quoteattr(a)}/>" for a in args)
               + "</qemu:commandline>")
    return "", meta + cmdline


def forwards_of(xml: str) -> list[tuple[str, int, int]]:
    """``(host address, host port, guest port)`` of each TCP forward of the
    domain ("" when bound to every address): from QEMU ``hostfwd``
    arguments, else ``<portForward>`` elements, else the job's metadata."""
    root = ET.fromstring(xml)
    found = [(m.group(1), int(m.group(2)), int(m.group(3)))
             for arg in root.iterfind(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")
             for m in _HOSTFWD.finditer(arg.get("value", ""))]
    if found:
        return found
    for iface in root.iterfind("devices/interface"):
        for fwd in iface.iterfind("portForward"):
            if fwd.get("proto", "tcp") != "tcp":
                continue
            for rng in fwd.iterfind("range"):
                start = int(rng.get("start", "0"))
                end = int(rng.get("end", start))
                to = int(rng.get("to", start))
                found += [(fwd.get("address", ""), port, to + port - start)
                          for port in range(start, end + 1)]
    if found:
        return found
    return [(el.get("address", ""), int(el.get("host", "0")), int(el.get("guest", "0")))
            for el in root.iterfind(f"metadata/{{{META_NS}}}forwards/{{{META_NS}}}forward")]


def forward_for(xml: str, guest_port: int) -> tuple[str, int] | None:
    """(host address, host port) forwarding to ``guest_port``; an unbound
    forward (every address) is used through 127.0.0.1."""
    for address, host_port, to in forwards_of(xml):
        if to == guest_port:
            return address or "127.0.0.1", host_port
    return None


def probe(host: str, port: int, timeout: float) -> str | None:
    """None when something at ``host:port`` sends data within ``timeout`` s;
    else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if sock.recv(1):
                return None
            return "the connection was closed without data (the guest port is not open yet)"
    except TimeoutError:
        return f"no data within {timeout:g} s"
    except OSError as err:
        return err.strerror or str(err)
