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

The connection handling all three share is in :mod:`._libvirtjob`,
WaitForAddress in :mod:`._waitaddress`; this module defines the jobs that
make and remove domains, and exports all of them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import libvirt

from ..job import REQUIRED
from . import _disks, _forward, _libvirt_plans
from ._domainxml import DEFAULT_TEMPLATE, defined_arch, differences, parse_memory, spec_of
from ._forward import forwards_of
from ._libvirtjob import MAX_VCPU, LibvirtJob, check_vcpu, domain_ref
from ._runscope import NotConvergedError, with_default_deps
from ._waitaddress import WaitForAddress
from .libvirt_errors import (
    DomainDriftError,
    InvalidLibvirtOptionError,
)

__all__ = ["MAX_VCPU", "CreateDomain", "LibvirtJob", "RemoveDomain", "WaitForAddress"]

log = logging.getLogger(__name__)


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
                           ("vcpu", check_vcpu)):
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

    @classmethod
    def defined_domain(cls) -> str | None:
        return str(cls.name)

    # -- helpers -------------------------------------------------------------
    def _check_options(self) -> None:
        """The numeric options again, for classes made without variant()
        (libvirt's test driver crashes the process on ``<vcpu>-1</vcpu>``)."""
        for key, check in (("memory", parse_memory), ("vcpu", check_vcpu)):
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

    def _xml(self, disk: _disks.Disk | None, domain_type: str, arch: str) -> str:
        return _disks.domain_xml(self, domain_type, arch, disk, DEFAULT_TEMPLATE)

    def _new_domain_xml(self, conn: libvirt.virConnect, disk: _disks.Disk) -> str:
        """The XML to define: domain type and arch from the host's capabilities."""
        with self._calling("read capabilities"):
            caps = conn.getCapabilities()
            kind = conn.getType()
        return self._xml(disk, _disks.choose_domain_type(self, caps, kind),
                         _disks.host_arch(caps))

    def _drift(self, conn: libvirt.virConnect, dom: libvirt.virDomain,
               plan: _disks.DiskPlan) -> str:
        """Raise DomainDriftError when the defined domain differs from the
        options; return its XML.  The host's capabilities are not read here
        (libvirtd takes seconds to build them): an "auto" domain type and
        the arch are the defined domain's, and neither is compared then."""
        with self._calling(f"read domain {self.name!r}"):
            xml = str(dom.XMLDesc(0))
        found = spec_of(xml)
        disk = plan.existing(self, conn)
        auto = (self.domain_type or "auto") == "auto"
        domain_type = (found.domain_type or "") if auto else str(self.domain_type)
        wanted = spec_of(self._xml(disk, domain_type, defined_arch(xml)))
        if disk is None:
            wanted = dataclasses.replace(wanted, disk=f"a new disk from {plan.image}")
        diffs = differences(wanted, found)
        if diffs:
            raise DomainDriftError(type(self).__name__, self.name, diffs)
        return xml

    # -- the job -------------------------------------------------------------
    def _check(self) -> dict[str, Any]:
        conn = self._conn()
        dom = self._lookup(conn, self.name)
        job = type(self).__name__
        if dom is None:
            raise NotConvergedError(job, f"domain {self.name!r} is not defined")
        plan = self._plan()
        xml = self._drift(conn, dom, plan)
        disk = plan.existing(self, conn)
        assert disk is not None  # no drift means the disk exists
        with self._calling(f"read state of domain {self.name!r}"):
            active = bool(dom.isActive())
            autostart = bool(dom.autostart())
        if not active:
            raise NotConvergedError(job, f"domain {self.name!r} is defined but not running")
        if autostart != bool(self.autostart):
            raise NotConvergedError(job, f"domain {self.name!r} autostart is {autostart}")
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
                xml = self._new_domain_xml(conn, disk)
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
        return domain_ref(self, self.domain)[1]

    def _check(self) -> dict[str, Any]:
        name = domain_ref(self, self.domain)[0]
        if self._lookup(self._conn(), name) is not None:
            raise NotConvergedError(type(self).__name__, f"domain {name!r} exists")
        return {"domain_name": name, "removed": True}

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: stop, undefine, and which disks would be deleted."""
        return _libvirt_plans.remove_domain_plan(self, domain_ref(self, self.domain)[0])

    def Run(self, *args: Any, **kwargs: Any) -> None:
        name = domain_ref(self, self.domain)[0]
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

