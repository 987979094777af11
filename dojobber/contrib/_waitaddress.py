"""WaitForAddress: the domain's IP address, from libvirt (DHCP lease, guest
agent, ARP table) or the host side of a port forward.  Re-exported by
:mod:`dojobber.contrib.libvirt`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import libvirt

from .._context import report_progress
from ..job import REQUIRED
from . import _forward, _libvirt_plans
from ._libvirtjob import LibvirtJob, check_seconds, domain_ref
from ._runscope import NotConvergedError, with_default_deps
from .libvirt_errors import (
    AddressTimeoutError,
    DomainNotFoundError,
    InvalidLibvirtOptionError,
    LibvirtJobError,
)

__all__ = ["WaitForAddress"]

_SOURCES = {
    "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}


class WaitForAddress(LibvirtJob):
    """The domain has an IP address; publishes it.

    Asks libvirt for the domain's interface addresses from ``sources`` in
    order (DHCP ``lease`` of a libvirt network, guest ``agent``, ``arp``
    table).  Check passes when one answers; Run polls every ``interval``
    seconds until ``timeout`` and then raises :class:`AddressTimeoutError`.

    With ``forwarded_port`` (e.g. 22) it asks no source: the address is the
    host side of the domain's forward of that guest port (127.0.0.1 and the
    host port), ready once the guest answers there; the SSH jobs take the
    port from it too (``address_from``).

    Records ``{"domain_name", "ip", "addresses", "source"}`` (and ``port``
    with a forward) as its result in the job context and sets the context
    key ``ip``.
    """

    #: Domain name, or its CreateDomain job (then name and uri come from it).
    domain: ClassVar[Any] = REQUIRED
    #: None: the CreateDomain job's uri, else qemu:///system.
    uri: ClassVar[str | None] = None
    sources: ClassVar[Sequence[str]] = ("lease", "agent", "arp")
    #: "ipv4", "ipv6" or "any".
    family: ClassVar[str] = "ipv4"
    timeout: ClassVar[float] = 180.0
    interval: ClassVar[float] = 2.0
    #: A guest port reached through the domain's port forward (CreateDomain
    #: ``port_forwards``): the address is the forward's host side, ready once
    #: the guest sends data on it (SSH's banner).  None: ask ``sources``.
    forwarded_port: ClassVar[int | None] = None
    #: Seconds one probe of the forward waits for the guest's first bytes (a
    #: guest under TCG emulation on a busy host takes many seconds to send
    #: SSH's banner; a probe returns as soon as it arrives).
    probe_timeout: ClassVar[float] = 30.0

    @classmethod
    def variant(cls, name: str | None = None, /, **options: Any) -> Any:
        """As :meth:`Job.variant`; depends on ``domain`` when that is a job
        and no ``DEPS`` are given."""
        made = super().variant(name, **with_default_deps(options, "domain"))
        for key in ("timeout", "interval"):
            if key in options:
                try:
                    check_seconds(options[key])
                except ValueError as err:
                    raise InvalidLibvirtOptionError(made.__name__, key, options[key],
                                                    str(err)) from None
        for src in options.get("sources", ()):
            if src not in _SOURCES:
                raise InvalidLibvirtOptionError(made.__name__, "sources", src,
                                                f"use some of {', '.join(_SOURCES)}")
        return made

    def _uri(self) -> str:
        return domain_ref(self, self.domain)[1]

    def _query(self, errors: dict[str, str]) -> dict[str, Any] | None:
        name = domain_ref(self, self.domain)[0]
        conn = self._conn()
        dom = self._lookup(conn, name)
        if dom is None:
            raise DomainNotFoundError(type(self).__name__, name, self._uri())
        if self.forwarded_port is not None:
            return self._query_forward(name, dom, errors)
        for src in self.sources:
            try:
                ifaces = dom.interfaceAddresses(_SOURCES[src], 0) or {}
            except libvirt.libvirtError as err:
                errors[src] = err.get_error_message() or str(err)
                continue
            found = [a for a in _addresses(ifaces) if self._wanted(a)]
            if found:
                return {"ip": found[0], "source": src, "addresses": found}
            errors[src] = "no address yet"
        return None

    def _query_forward(self, name: str, dom: libvirt.virDomain,
                       errors: dict[str, str]) -> dict[str, Any] | None:
        with self._calling(f"read domain {name!r}"):
            xml = dom.XMLDesc(0)
            active = bool(dom.isActive())
        forward = _forward.forward_for(xml, int(self.forwarded_port or 0))
        if forward is None:
            raise LibvirtJobError(type(self).__name__, f"domain {name!r} has no port forward "
                                  f"to guest port {self.forwarded_port}; set CreateDomain's "
                                  "port_forwards, or unset forwarded_port")
        if not active:
            errors["forward"] = f"domain {name!r} is not running"
            return None
        why = _forward.probe(*forward, timeout=float(self.probe_timeout))
        if why is not None:
            errors["forward"] = f"{forward[0]}:{forward[1]}: {why}"
            return None
        return {"ip": forward[0], "port": forward[1], "source": "forward",
                "addresses": [forward[0]]}

    def _wanted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            return False
        return self.family == "any" or (self.family == "ipv6") == (ip.version == 6)

    def _result(self, found: dict[str, Any]) -> dict[str, Any]:
        values = {"domain_name": domain_ref(self, self.domain)[0], **found}
        return self._publish(values, ip=found["ip"])

    def _check(self) -> dict[str, Any]:
        errors: dict[str, str] = {}
        found = self._query(errors)
        if found is None:
            raise NotConvergedError(type(self).__name__, "no address yet: " + "; ".join(
                f"{k}: {v}" for k, v in errors.items()))
        return self._result(found)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        start = time.monotonic()
        deadline = start + float(self.timeout)
        errors: dict[str, str] = {}
        while True:
            errors.clear()
            if self._query(errors) is not None:
                return
            now = time.monotonic()
            report_progress(now - start, float(self.timeout), "s")
            if now >= deadline:
                raise AddressTimeoutError(type(self).__name__,
                                          domain_ref(self, self.domain)[0],
                                          float(self.timeout), list(self.sources), errors)
            time.sleep(max(0.0, min(float(self.interval), deadline - now)))

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: which address Run would wait for, and how long."""
        return _libvirt_plans.wait_for_address_plan(self, domain_ref(self, self.domain)[0])


def _addresses(ifaces: dict[str, Any]) -> list[str]:
    return [a["addr"] for iface in ifaces.values() for a in (iface.get("addrs") or [])
            if a.get("addr")]
