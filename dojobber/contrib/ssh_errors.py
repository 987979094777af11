"""Errors of the bundled SSH jobs (:mod:`dojobber.contrib.ssh`).

Every message names the job and says what to do; none holds a password.
This module needs no optional package, so you can catch these without
paramiko installed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DefinitionError, GiveUp, RunError
from ._runscope import ReconstructibleError

__all__ = [
    "CheckCommandError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ConsoleCommandError",
    "ConsoleError",
    "ConsoleLoginError",
    "ConsoleTimeoutError",
    "HostKeyChangedError",
    "HostKeyUnknownError",
    "InvalidSSHOptionError",
    "NoHostError",
    "SSHAuthError",
    "SSHConnectError",
    "SSHJobError",
    "SeedError",
]


def _tail(lines: Sequence[str]) -> str:
    if not lines:
        return " (no output)"
    return "; last output:\n  " + "\n  ".join(lines)


class InvalidSSHOptionError(ReconstructibleError, DefinitionError, GiveUp):
    """An SSH job was given an option value it cannot use."""

    def __init__(self, job: str, option: str, value: object, why: str) -> None:
        self.job = job
        self.option = option
        super().__init__(f"{job}: option {option}={value!r} is not valid: {why}")


class SSHJobError(ReconstructibleError, RunError):
    """Base of the SSH jobs' run-time errors; ``job`` names the job."""

    def __init__(self, job: str, message: str) -> None:
        self.job = job
        super().__init__(f"{job}: {message}")


class NoHostError(SSHJobError):
    """No host to connect to: no ``host`` option and no published address."""


class SSHConnectError(SSHJobError):
    """The host's sshd could not be reached within the retry window."""

    def __init__(self, job: str, target: str, reason: str, waited: float,
                 tries: int = 1) -> None:
        self.target = target
        self.reason = reason
        self.tries = tries
        tried = "tried once" if tries == 1 else f"tried {tries} times over {waited:.0f} s"
        super().__init__(
            job,
            f"cannot connect to {target} ({tried}): {reason}; check the address and that "
            "sshd runs there, or set connect_retry_for=SECONDS to wait for a machine "
            "that is still booting",
        )


class SSHAuthError(SSHJobError, GiveUp):
    """The server refused every offered credential."""

    def __init__(self, job: str, target: str, reason: str) -> None:
        self.target = target
        super().__init__(
            job,
            f"authentication to {target} failed: {reason}; check username, key_filename "
            "(or the agent) and that the key is in the user's authorized_keys",
        )


class HostKeyUnknownError(SSHJobError):
    """The host's key is not in known_hosts and the policy is ``verify``."""

    def __init__(self, job: str, target: str, fingerprint: str, known_hosts: str) -> None:
        self.target = target
        self.fingerprint = fingerprint
        super().__init__(
            job,
            f"host key of {target} ({fingerprint}) is not in {known_hosts}; verify it and "
            "add it (ssh-keyscan), or set host_key_policy='accept-new' to record it on "
            "first connect",
        )


class HostKeyChangedError(SSHJobError, GiveUp):
    """The host presented a key that differs from the recorded one."""

    def __init__(self, job: str, target: str, fingerprint: str, expected: str,
                 known_hosts: str) -> None:
        self.target = target
        self.fingerprint = fingerprint
        self.expected = expected
        super().__init__(
            job,
            f"HOST KEY OF {target} CHANGED: it presented {fingerprint}, {known_hosts} has "
            f"{expected}. Someone may be intercepting the connection, or the host was "
            "reinstalled; if you know why, remove its line (ssh-keygen -R) and run again",
        )


class CommandFailedError(SSHJobError):
    """A command exited non-zero; the commands after it did not run."""

    def __init__(self, job: str, target: str, command: str, status: int,
                 tail: Sequence[str]) -> None:
        self.target = target
        self.command = command
        self.status = status
        self.tail = list(tail)
        super().__init__(
            job, f"command {command!r} on {target} exited with status {status}{_tail(tail)}"
        )


class CommandTimeoutError(SSHJobError):
    """A command did not finish within the job's ``timeout``."""

    def __init__(self, job: str, target: str, command: str, timeout: float,
                 tail: Sequence[str]) -> None:
        self.target = target
        self.command = command
        self.timeout = timeout
        self.tail = list(tail)
        super().__init__(
            job, f"command {command!r} on {target} did not finish within {timeout:g} s "
            f"(its channel was closed){_tail(tail)}"
        )


class CheckCommandError(SSHJobError):
    """After the commands ran, ``check_command`` still does not exit 0."""

    def __init__(self, job: str, target: str, command: str, status: int,
                 tail: Sequence[str]) -> None:
        self.command = command
        self.status = status
        super().__init__(
            job, f"the commands ran, but check_command {command!r} on {target} still "
            f"exits {status}{_tail(tail)}; fix the commands or the check"
        )


class ConsoleError(SSHJobError):
    """Base of the console login method's errors (:class:`AuthorizeSSHKey`).

    ``console_tail`` holds the last lines the console showed (the password
    never appears in them)."""

    def __init__(self, job: str, console: str, message: str,
                 console_tail: Sequence[str] = ()) -> None:
        self.console = console
        self.console_tail = list(console_tail)
        super().__init__(job, f"console {console}: {message}{_tail(self.console_tail)}")


class ConsoleTimeoutError(ConsoleError):
    """The console showed no login prompt or shell within the timeout."""


class ConsoleLoginError(ConsoleError):
    """The guest refused the user and password given (``Login incorrect``).

    Not worth retrying with the same password: fix ``console_password``."""


class ConsoleCommandError(ConsoleError):
    """Writing the key on the guest's console failed (non-zero status)."""


class SeedError(SSHJobError):
    """A cloud-init seed cannot be made or read, or no public key is found."""
