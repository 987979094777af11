"""Errors of the bundled libvirt jobs (:mod:`dojobber.contrib.libvirt`).

Every message names the job and says what to do.  This module needs no
optional package, so you can catch these without libvirt-python installed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DefinitionError, GiveUp, RunError
from ._runscope import ReconstructibleError

__all__ = [
    "AddressTimeoutError",
    "DiskError",
    "DomainDriftError",
    "DomainNotFoundError",
    "InvalidLibvirtOptionError",
    "LibvirtCallError",
    "LibvirtJobError",
]


class InvalidLibvirtOptionError(ReconstructibleError, DefinitionError, GiveUp):
    """A libvirt job was given an option value it cannot use."""

    def __init__(self, job: str, option: str, value: object, why: str) -> None:
        self.job = job
        self.option = option
        self.value = value
        super().__init__(f"{job}: option {option}={value!r} is not valid: {why}")


class LibvirtJobError(ReconstructibleError, RunError):
    """Base of the libvirt jobs' run-time errors; ``job`` names the job."""

    def __init__(self, job: str, message: str) -> None:
        self.job = job
        super().__init__(f"{job}: {message}")


class LibvirtCallError(LibvirtJobError):
    """A libvirt call failed; carries libvirt's message and error code."""

    def __init__(self, job: str, uri: str, what: str, message: str, code: int | None) -> None:
        self.uri = uri
        self.what = what
        self.libvirt_message = message
        self.code = code
        hint = ""
        if what.startswith("connect"):
            hint = (
                "; check the URI, that libvirtd (or virtqemud) runs, and that you may "
                "use it (e.g. membership in group 'libvirt')"
            )
        super().__init__(job, f"{what} on {uri} failed: {message} (libvirt error {code}){hint}")


class DomainDriftError(LibvirtJobError):
    """A domain of that name exists but differs from the job's options."""

    def __init__(self, job: str, domain: str, differences: Sequence[str]) -> None:
        self.domain = domain
        self.differences = list(differences)
        super().__init__(
            job,
            f"domain {domain!r} exists but differs from this job's options: "
            + "; ".join(self.differences)
            + ". It is not redefined: change the options to match, or remove the "
            "domain (RemoveDomain, or virsh undefine) and run again",
        )


class DomainNotFoundError(LibvirtJobError):
    """The domain a job works on is not defined."""

    def __init__(self, job: str, domain: str, uri: str) -> None:
        self.domain = domain
        super().__init__(
            job, f"no domain {domain!r} on {uri}; create it first (put its CreateDomain "
            "job in DEPS)"
        )


class AddressTimeoutError(LibvirtJobError):
    """No address appeared for the domain before the timeout."""

    def __init__(
        self, job: str, domain: str, timeout: float, sources: Sequence[str],
        errors: dict[str, str],
    ) -> None:
        self.domain = domain
        self.timeout = timeout
        self.errors = dict(errors)
        why = "".join(f"; {src}: {msg}" for src, msg in self.errors.items())
        super().__init__(
            job,
            f"domain {domain!r} has no address after {timeout:g} s "
            f"(asked {', '.join(sources)}{why}); check the guest boots and gets DHCP, "
            "or raise the timeout",
        )


class DiskError(LibvirtJobError):
    """The domain's disk cannot be made (image missing, no qemu-img, ...)."""
