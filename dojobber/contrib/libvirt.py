"""Bundled jobs for libvirt domains: create, wait for an address, remove.

Needs the ``libvirt`` extra (``pip install dojobber[libvirt]``).  Configure
the jobs with :meth:`~dojobber.Job.variant`::

    Vm = CreateDomain.variant("vm1", name="vm1", image="/srv/img/tw.qcow2")
    VmIp = WaitForAddress.variant("vm1 address", domain=Vm)
    Gone = RemoveDomain.variant("vm1 gone", domain="vm1", uri="qemu:///system")

Each job records its result in the job context ``global_storage["kanku"]``:
``["jobs"][<job name>]``, and the plain keys ``domain_name`` / ``ip`` (see
docs/libvirt.rst).  libvirt
errors become :class:`~dojobber.contrib.libvirt_errors.LibvirtCallError`;
importing this module silences libvirt's default printing of errors to stderr.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import libvirt

from .._context import report_progress
from ..job import REQUIRED, Job
from . import _disks, _forward, _libvirt_plans
from ._domainxml import DEFAULT_TEMPLATE, differences, parse_memory, spec_of
from ._forward import forwards_of
from ._runscope import NotConvergedError, publish, run_pool, with_default_deps
from .libvirt_errors import (
    AddressTimeoutError,
    DomainDriftError,
    DomainNotFoundError,
    InvalidLibvirtOptionError,
    LibvirtCallError,
    LibvirtJobError,
)

__all__ = ["CreateDomain", "LibvirtJob", "RemoveDomain", "WaitForAddress"]

log = logging.getLogger(__name__)


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt's error callback: errors arrive as exceptions, print nothing."""


libvirt.registerErrorHandler(_quiet, None)

_POOL_KEY = "dojobber.contrib.libvirt:connections"
_SOURCES = {
    "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}


def _close(conn: libvirt.virConnect) -> None:
    conn.close()


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


class LibvirtJob(Job):
    """Base of the libvirt jobs: the connection (one per URI per run)."""

    #: libvirt connection URI.
    uri: ClassVar[str | None] = "qemu:///system"
    #: Longest one attempt may take (copying a disk image included).
    TIMEOUT = 1800.0

    def _uri(self) -> str:
        return self.uri or "qemu:///system"

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn a libvirt error inside the block into a LibvirtCallError."""
        try:
            yield
        except libvirt.libvirtError as err:
            raise LibvirtCallError(
                type(self).__name__, self._uri(), what,
                err.get_error_message() or str(err), err.get_error_code(),
            ) from err

    def _conn(self) -> libvirt.virConnect:
        uri = self._uri()

        def connect() -> libvirt.virConnect:
            with self._calling("connect"):
                return libvirt.open(uri)

        pool = run_pool(self.global_storage, _POOL_KEY, _close)
        return pool.get(uri, connect, _alive)

    def _lookup(self, conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            with self._calling(f"look up domain {name!r}"):
                raise

    def _publish(self, values: dict[str, Any], **context: Any) -> dict[str, Any]:
        publish(self.global_storage, type(self).__name__, values, context)
        return values

    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Pass when the job's fact holds (see the class).  On the recheck
        after a Run that raised, a "not yet" becomes Run's error."""
        try:
            return self._check()
        except NotConvergedError:
            if self._check_phase == "recheck" and self._run_exception is not None:
                raise self._run_exception from None
            raise

    def _check(self) -> dict[str, Any]:
        raise NotImplementedError

    def Cleanup(self) -> None:
        """Close the run's libvirt connections."""
        if self.global_storage is not None and _POOL_KEY in self.global_storage:
            self.global_storage[_POOL_KEY].close_all()


class CreateDomain(LibvirtJob):
    """A libvirt domain exists, matches the options and runs.

    Check passes when domain ``name`` is defined with the wanted memory, vCPUs,
    disk and network, runs, and has the wanted autostart.  A domain of that
    name that differs raises :class:`DomainDriftError` (it is never silently
    redefined).  Run makes the per-domain disk from ``image`` (see
    ``disk_mode``), defines the domain from ``template`` and starts it; an
    existing stopped domain is just started.

    ``seed`` attaches a cloud-init seed CD-ROM (see
    :class:`~dojobber.contrib.prepare_ssh.CloudInitSeed`); ``port_forwards``
    adds a NIC with user-mode networking and TCP forwards on
    ``forward_address`` (127.0.0.1), for hosts without a libvirt network or
    to reach the guest only through loopback (see :mod:`._forward` and
    :class:`WaitForAddress`'s ``forwarded_port``).

    Records ``{"domain_name", "uri", "disk", "disk_mode", "domain_type",
    "forwards"}`` as its result in the job context (``forwards``: ``[host
    address, host port, guest port]`` each) and sets the context key
    ``domain_name``.
    """

    #: Domain name.
    name: ClassVar[str] = REQUIRED
    #: Memory: "2G", "512M", "1.5GiB" (binary units) or an int of MiB.
    memory: ClassVar[str | int] = "2G"
    vcpu: ClassVar[int] = 2
    #: libvirt network of the NIC; None for no NIC.
    network: ClassVar[str | None] = "default"
    #: Base image: a path, or a job (e.g. a Download variant) whose result has ``path``.
    image: ClassVar[Any] = REQUIRED
    #: Storage pool for the disk volume (uploaded with a libvirt stream).
    pool: ClassVar[str | None] = None
    #: "auto", "volume" (needs pool), "overlay" (qemu-img) or "copy".
    disk_mode: ClassVar[str] = "auto"
    #: Directory of overlay/copy disks; None: the image's directory.
    disk_dir: ClassVar[str | None] = None
    #: Image format ("qcow2", "raw"); None: read from the image's header.
    disk_format: ClassVar[str | None] = None
    #: Domain XML with ${placeholders} (str), a path to one, or None for the default.
    template: ClassVar[Any] = None
    autostart: ClassVar[bool] = False
    #: "kvm", "qemu" (TCG emulation) or "auto"/None: "test" on the test driver,
    #: "kvm" when the host offers it, else "qemu" with a warning.
    domain_type: ClassVar[str | None] = None
    #: A cloud-init seed ISO attached as a CD-ROM: a path, or a job (a
    #: CloudInitSeed variant) whose result has ``path``.
    seed: ClassVar[Any] = None
    #: Host port -> guest port: a NIC with user-mode networking and these TCP
    #: forwards (in addition to ``network``; set network=None for only this).
    port_forwards: ClassVar[Mapping[int, int] | None] = None
    #: Host address the forwards listen on.
    forward_address: ClassVar[str] = "127.0.0.1"
    #: "slirp" (QEMU's, via <qemu:commandline>) or "passt" (libvirt's <portForward>).
    forward_backend: ClassVar[str] = "slirp"

    @classmethod
    def variant(cls, name: str | None = None, /, **options: Any) -> Any:
        """As :meth:`Job.variant`; checks ``memory``/``disk_mode`` now, and
        depends on ``image`` when that is a job and no ``DEPS`` are given."""
        made = super().variant(name, **with_default_deps(options, "image", "seed"))
        for key, check in (("memory", parse_memory), ("disk_mode", _disks.check_mode),
                           ("vcpu", _check_vcpu)):
            if key in options:
                try:
                    check(options[key])
                except ValueError as err:
                    raise InvalidLibvirtOptionError(made.__name__, key, options[key],
                                                    str(err)) from None
        if (made.domain_type or "auto") not in (*_disks.DOMAIN_TYPES, "test"):
            raise InvalidLibvirtOptionError(made.__name__, "domain_type", made.domain_type,
                                            f"use one of {', '.join(_disks.DOMAIN_TYPES)}")
        if made.forward_backend not in _forward.BACKENDS:
            raise InvalidLibvirtOptionError(made.__name__, "forward_backend",
                                            made.forward_backend,
                                            f"use one of {', '.join(_forward.BACKENDS)}")
        for host, guest in (made.port_forwards or {}).items():
            if not all(isinstance(p, int) and 0 < p < 65536 for p in (host, guest)):
                raise InvalidLibvirtOptionError(made.__name__, "port_forwards",
                                                made.port_forwards,
                                                "map host ports to guest ports (1-65535)")
        if made.disk_mode == "volume" and not made.pool:
            raise InvalidLibvirtOptionError(made.__name__, "disk_mode", "volume",
                                            "a volume needs the pool option")
        return made

    # -- helpers -------------------------------------------------------------
    def _check_options(self) -> None:
        """The numeric options again, for classes made without variant()
        (libvirt's test driver crashes the process on ``<vcpu>-1</vcpu>``)."""
        for key, check in (("memory", parse_memory), ("vcpu", _check_vcpu)):
            try:
                check(getattr(self, key))
            except ValueError as err:
                raise InvalidLibvirtOptionError(type(self).__name__, key, getattr(self, key),
                                                str(err)) from None

    def _plan(self) -> _disks.DiskPlan:
        return _disks.DiskPlan.of(
            type(self).__name__, self.name, _disks.image_path(self), self.pool,
            self.disk_mode, self.disk_dir, self.disk_format,
        )

    def _xml(self, conn: libvirt.virConnect, disk: _disks.Disk | None) -> str:
        with self._calling("read capabilities"):
            caps = conn.getCapabilities()
            kind = conn.getType()
        return _disks.domain_xml(self, caps, kind, disk, DEFAULT_TEMPLATE)

    def _drift(self, conn: libvirt.virConnect, dom: libvirt.virDomain,
               plan: _disks.DiskPlan) -> None:
        with self._calling(f"read domain {self.name!r}"):
            found = spec_of(dom.XMLDesc(0))
        disk = plan.existing(self, conn)
        wanted = spec_of(self._xml(conn, disk))
        if not self.domain_type or self.domain_type == "auto":
            wanted = dataclasses.replace(wanted, domain_type=None)
        if disk is None:
            wanted = dataclasses.replace(wanted, disk=f"a new disk from {plan.image}")
        diffs = differences(wanted, found)
        if diffs:
            raise DomainDriftError(type(self).__name__, self.name, diffs)

    # -- the job -------------------------------------------------------------
    def _check(self) -> dict[str, Any]:
        conn = self._conn()
        dom = self._lookup(conn, self.name)
        job = type(self).__name__
        if dom is None:
            raise NotConvergedError(job, f"domain {self.name!r} is not defined")
        plan = self._plan()
        self._drift(conn, dom, plan)
        disk = plan.existing(self, conn)
        assert disk is not None  # no drift means the disk exists
        with self._calling(f"read state of domain {self.name!r}"):
            active = bool(dom.isActive())
            autostart = bool(dom.autostart())
        if not active:
            raise NotConvergedError(job, f"domain {self.name!r} is defined but not running")
        if autostart != bool(self.autostart):
            raise NotConvergedError(job, f"domain {self.name!r} autostart is {autostart}")
        with self._calling(f"read domain {self.name!r}"):
            xml = dom.XMLDesc(0)
        values = {"domain_name": self.name, "uri": self._uri(), "disk": disk.path,
                  "disk_mode": disk.mode, "domain_type": spec_of(xml).domain_type,
                  "forwards": [list(f) for f in forwards_of(xml)]}
        return self._publish(values, domain_name=self.name)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        self._check_options()
        conn = self._conn()
        plan = self._plan()
        dom = self._lookup(conn, self.name)
        made_disk: _disks.Disk | None = None
        defined = False
        try:
            if dom is None:
                disk = plan.existing(self, conn)
                if disk is None:
                    disk = made_disk = plan.create(self, conn)
                xml = self._xml(conn, disk)
                with self._calling(f"define domain {self.name!r}"):
                    dom = conn.defineXML(xml)
                defined = True
                log.info("defined domain %s (disk %s, %s)", self.name, disk.path, disk.mode)
            else:
                self._drift(conn, dom, plan)
            with self._calling(f"set autostart of domain {self.name!r}"):
                if bool(dom.autostart()) != bool(self.autostart):
                    dom.setAutostart(int(bool(self.autostart)))
            with self._calling(f"start domain {self.name!r}"):
                if not dom.isActive():
                    dom.create()
                    log.info("started domain %s", self.name)
        except BaseException:
            # Nothing half-made stays: what this Run defined and made goes.
            self._undo(conn, dom if defined else None, made_disk)
            raise

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: define (with which disk), set autostart, start."""
        return _libvirt_plans.create_domain_plan(self)

    def _undo(self, conn: libvirt.virConnect, dom: libvirt.virDomain | None,
              disk: _disks.Disk | None) -> None:
        job = type(self).__name__
        try:
            if dom is not None:
                dom.undefine()
                log.info("%s: undefined domain %s again (its start failed)", job, self.name)
            if disk is not None:
                _disks.delete_disk(self, conn, disk.path)
        except Exception as err:  # the first error is the one to report
            log.warning("%s: could not remove what the failed Run made: %s", job, err)


#: Most vCPUs a domain may be given (libvirt's own limit is per driver).
MAX_VCPU = 4096


def _check_vcpu(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("give a whole number of vCPUs")
    if not 1 <= value <= MAX_VCPU:
        raise ValueError(f"give 1 to {MAX_VCPU} vCPUs")


def _check_seconds(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("give seconds as a number")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("give a finite number of seconds > 0")


def _domain_ref(job: LibvirtJob, ref: Any) -> tuple[str, str]:
    """(domain name, uri) of a ``domain`` option: a name or a CreateDomain job."""
    if isinstance(ref, type) and issubclass(ref, CreateDomain):
        return ref.name, job.uri or ref.uri or "qemu:///system"
    return str(ref), job.uri or "qemu:///system"


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
                    _check_seconds(options[key])
                except ValueError as err:
                    raise InvalidLibvirtOptionError(made.__name__, key, options[key],
                                                    str(err)) from None
        for src in options.get("sources", ()):
            if src not in _SOURCES:
                raise InvalidLibvirtOptionError(made.__name__, "sources", src,
                                                f"use some of {', '.join(_SOURCES)}")
        return made

    def _uri(self) -> str:
        return _domain_ref(self, self.domain)[1]

    def _query(self, errors: dict[str, str]) -> dict[str, Any] | None:
        name = _domain_ref(self, self.domain)[0]
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
        values = {"domain_name": _domain_ref(self, self.domain)[0], **found}
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
                                          _domain_ref(self, self.domain)[0],
                                          float(self.timeout), list(self.sources), errors)
            time.sleep(max(0.0, min(float(self.interval), deadline - now)))

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: which address Run would wait for, and how long."""
        return _libvirt_plans.wait_for_address_plan(self, _domain_ref(self, self.domain)[0])


def _addresses(ifaces: dict[str, Any]) -> list[str]:
    return [a["addr"] for iface in ifaces.values() for a in (iface.get("addrs") or [])
            if a.get("addr")]


class RemoveDomain(LibvirtJob):
    """The domain does not exist: destroy and undefine it, and delete its
    disks (pool volumes or files) unless ``keep_volumes``.

    A missing domain is already converged.  Only ``device='disk'`` disks
    are deleted (never CD-ROMs), and never the backing image of an overlay.
    """

    #: Domain name, or its CreateDomain job.
    domain: ClassVar[Any] = REQUIRED
    #: None: the CreateDomain job's uri, else qemu:///system.
    uri: ClassVar[str | None] = None
    keep_volumes: ClassVar[bool] = False

    def _uri(self) -> str:
        return _domain_ref(self, self.domain)[1]

    def _check(self) -> dict[str, Any]:
        name = _domain_ref(self, self.domain)[0]
        if self._lookup(self._conn(), name) is not None:
            raise NotConvergedError(type(self).__name__, f"domain {name!r} exists")
        return {"domain_name": name, "removed": True}

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: stop, undefine, and which disks would be deleted."""
        return _libvirt_plans.remove_domain_plan(self, _domain_ref(self, self.domain)[0])

    def Run(self, *args: Any, **kwargs: Any) -> None:
        name = _domain_ref(self, self.domain)[0]
        conn = self._conn()
        dom = self._lookup(conn, name)
        if dom is None:
            return
        with self._calling(f"read domain {name!r}"):
            disks = _disks.disk_sources(dom.XMLDesc(0))
        with self._calling(f"stop domain {name!r}"):
            if dom.isActive():
                dom.destroy()
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                 | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        with self._calling(f"undefine domain {name!r}"):
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError as err:
                if err.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT,
                                                libvirt.VIR_ERR_INVALID_ARG):
                    raise
                dom.undefine()
        log.info("removed domain %s", name)
        if not self.keep_volumes:
            for path in disks:
                _disks.delete_disk(self, conn, path)

