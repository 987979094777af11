"""Check mode for the libvirt jobs: what their Run would do, in words.

Each function reads (never changes) the domain through the run's shared
connection and returns the text the job's ``Plan()`` gives.  A Run that
would fail (a drifted domain, a missing image) is said, not raised: the job
would run, and its Run would report that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._describe import message
from . import _disks
from .libvirt_errors import DiskError, DomainDriftError

if TYPE_CHECKING:
    from .libvirt import CreateDomain, RemoveDomain, WaitForAddress

__all__ = ["create_domain_plan", "remove_domain_plan", "wait_for_address_plan"]


def create_domain_plan(job: CreateDomain) -> str:
    """Define (with which disk), set autostart, start: what Run would do."""
    name, uri = job.name, job._uri()
    if isinstance(job._check_exception, DomainDriftError):
        return (f"nothing it can fix: {message(job._check_exception)}; Run would fail "
                "(remove the domain, or change the options to match it)")
    conn = job._conn()
    dom = job._lookup(conn, name)
    if dom is None:
        try:
            plan = job._plan()
            disk = plan.existing(job, conn)
        except DiskError as err:
            return f"define domain {name!r} on {uri}, but Run would fail: {message(err)}"
        made = f"its disk {disk.path}" if disk is not None else f"a new disk: {plan.describe()}"
        steps = [f"define domain {name!r} on {uri} ({job.memory} memory, {job.vcpu} vCPU, "
                 f"{made})"]
        if job.autostart:
            steps.append("set it to start at boot")
        steps.append("start it")
        return "; ".join(steps)
    steps = []
    with job._calling(f"read state of domain {name!r}"):
        autostart, active = bool(dom.autostart()), bool(dom.isActive())
    if autostart != bool(job.autostart):
        steps.append(f"set autostart of domain {name!r} to {bool(job.autostart)}")
    if not active:
        steps.append(f"start domain {name!r}")
    return "; ".join(steps) or f"nothing (domain {name!r} holds now)"


def wait_for_address_plan(job: WaitForAddress, name: str) -> str:
    """Which address of domain ``name`` Run would wait for, how long, asking whom."""
    if job.forwarded_port is not None:
        asking = f"the guest to answer on the host side of its forward of port " \
                 f"{job.forwarded_port}"
    else:
        asking = f"an {job.family} address (asking {', '.join(job.sources)})"
    return f"wait up to {float(job.timeout):g}s for domain {name!r}: {asking}"


def remove_domain_plan(job: RemoveDomain, name: str) -> str:
    """Stop, undefine, delete which disks of domain ``name``: what Run would do."""
    dom = job._lookup(job._conn(), name)
    if dom is None:
        return f"nothing (domain {name!r} is gone now)"
    with job._calling(f"read domain {name!r}"):
        disks = _disks.disk_sources(dom.XMLDesc(0))
        active = bool(dom.isActive())
    steps = [f"stop domain {name!r}"] if active else []
    steps.append(f"undefine domain {name!r}")
    if job.keep_volumes:
        steps.append("keep its disks")
    elif disks:
        steps.append("delete its disks " + ", ".join(disks))
    return "; ".join(steps)
