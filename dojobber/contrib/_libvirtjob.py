"""The base of the libvirt jobs: one connection per URI per run, libvirt
errors as :class:`~dojobber.contrib.libvirt_errors.LibvirtCallError`, and
the ``domain`` option that names a domain or the job defining it.

Importing this module silences libvirt's default printing of errors to
stderr (they arrive as exceptions).  Public names are re-exported by
:mod:`dojobber.contrib.libvirt`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import libvirt

from ..job import Job
from ._runscope import NotConvergedError, publish, run_pool
from .libvirt_errors import LibvirtCallError

__all__ = [
    "MAX_VCPU",
    "LibvirtJob",
    "check_seconds",
    "check_vcpu",
    "domain_ref",
    "silence_libvirt_errors",
]


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt's error callback: errors arrive as exceptions, print nothing."""


def silence_libvirt_errors() -> None:
    """Stop libvirt printing each error to stderr (they arrive as exceptions)."""
    libvirt.registerErrorHandler(_quiet, None)


silence_libvirt_errors()

_POOL_KEY = "dojobber.contrib.libvirt:connections"


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

    @classmethod
    def defined_domain(cls) -> str | None:
        """The name of the domain this job defines (CreateDomain's ``name``);
        None for jobs that only act on a domain."""
        return None

    def Cleanup(self) -> None:
        """Close the run's libvirt connections."""
        if self.global_storage is not None and _POOL_KEY in self.global_storage:
            self.global_storage[_POOL_KEY].close_all()


#: Most vCPUs a domain may be given (libvirt's own limit is per driver).
MAX_VCPU = 4096


def check_vcpu(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("give a whole number of vCPUs")
    if not 1 <= value <= MAX_VCPU:
        raise ValueError(f"give 1 to {MAX_VCPU} vCPUs")


def check_seconds(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("give seconds as a number")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("give a finite number of seconds > 0")



def domain_ref(job: LibvirtJob, ref: Any) -> tuple[str, str]:
    """(domain name, uri) of a ``domain`` option: a name, or the job that
    defines the domain (then its uri is the default)."""
    if isinstance(ref, type) and issubclass(ref, LibvirtJob):
        name = ref.defined_domain()
        if name is not None:
            return name, job.uri or ref.uri or "qemu:///system"
    return str(ref), job.uri or "qemu:///system"
