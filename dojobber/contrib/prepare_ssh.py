"""Make a fresh guest accept your SSH key (Kanku's PrepareSSH), two ways.

Needs the ``ssh`` extra (paramiko); the seed needs the ``libvirt`` extra
(pycdlib), the console method libvirt-python (or a terminal device).

cloud-init NoCloud seed (images that run cloud-init)::

    Seed = CloudInitSeed.variant("vm1 seed", path="/srv/vm1-seed.iso",
                                 hostname="vm1", key_filename="~/.ssh/id_ed25519")
    Vm = CreateDomain.variant("vm1", name="vm1", image=..., seed=Seed)
    Key = AuthorizeSSHKey.variant("vm1 key", method="cloud-init",
                                  address_from=VmIp, key_filename="~/.ssh/id_ed25519")

Console login (images with a known password and a getty on the serial port)::

    Key = AuthorizeSSHKey.variant("vm1 key", method="console", domain=Vm,
                                  address_from=VmIp, key_filename="~/.ssh/id_ed25519",
                                  console_password=os.environ["VM1_ROOT_PASSWORD"])

Either way the job's Check is "SSH with this key works": a converged guest
costs one SSH handshake, and the connection is kept for the SSH jobs after it
(same host, port, user).  See docs/prepare_ssh.rst.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import paramiko

from ..job import REQUIRED, Job
from . import _console, _seediso, _ssh_plans
from ._runscope import NotConvergedError, publish, with_default_deps
from .ssh import SSHJob
from .ssh_errors import (
    ConsoleError,
    InvalidSSHOptionError,
    SeedError,
    SSHAuthError,
    SSHConnectError,
    SSHJobError,
)

__all__ = ["METHODS", "AuthorizeSSHKey", "CloudInitSeed", "public_key_line"]

log = logging.getLogger("dojobber.contrib.ssh")

METHODS = ("cloud-init", "console")


def public_key_line(job: str, public_key: str | None, key_filename: str | None) -> str:
    """``type base64 [comment]`` of the key: ``public_key`` (the line itself
    or a file holding it), else ``<key_filename>.pub``, else derived from the
    private key ``key_filename``."""
    if public_key:
        text = public_key.strip()
        if not text.startswith(("ssh-", "ecdsa-", "sk-")):
            path = os.path.expanduser(text)
            try:
                with open(path, encoding="ascii") as f:
                    text = f.read().strip()
            except OSError as err:
                raise SeedError(job, f"public_key {public_key!r} is neither a key line nor "
                                f"a readable file: {err.strerror}") from None
        lines = [x for x in text.splitlines() if x.strip() and not x.startswith("#")]
        if len(lines) != 1 or len(lines[0].split()) < 2:
            raise SeedError(job, f"public_key {public_key!r} holds no single key line "
                            "('ssh-ed25519 AAAA... comment')")
        return lines[0].strip()
    if not key_filename:
        raise SeedError(job, "no key: set key_filename (the private key; its .pub is used) "
                        "or public_key")
    private = os.path.expanduser(key_filename)
    with contextlib.suppress(OSError), open(private + ".pub", encoding="ascii") as f:
        return f.read().strip()
    try:
        key = paramiko.PKey.from_path(private)
    except (OSError, paramiko.SSHException) as err:
        raise SeedError(job, f"cannot read key_filename {key_filename}: {err}") from None
    return f"{key.get_name()} {key.get_base64()}"


class CloudInitSeed(Job):
    """A cloud-init NoCloud seed ISO authorizing your key exists at ``path``.

    Check reads the ISO back and passes when its label is ``cidata`` and its
    ``meta-data`` / ``user-data`` are what the options give; Run writes it
    (to ``path.part``, renamed into place).  Give it to
    :class:`~dojobber.contrib.libvirt.CreateDomain` as ``seed``.

    The instance id follows the content: with a changed key the ISO is
    rewritten and cloud-init applies it at the guest's next *power cycle*
    (a running guest keeps the old file open; shut it down and start it, or
    recreate the domain).  A new instance also gets new SSH host keys.

    Records ``{"path", "instance_id", "username", "hostname"}``.
    """

    #: Where the ISO goes (e.g. next to the domain's disk).
    path: ClassVar[str] = REQUIRED
    hostname: ClassVar[str] = REQUIRED
    #: The user whose authorized_keys get the key ("root", or a user cloud-init creates).
    username: ClassVar[str] = "root"
    key_filename: ClassVar[str | None] = None
    #: The public key line, or a file holding it; None: ``<key_filename>.pub``.
    public_key: ClassVar[str | None] = None
    #: More cloud-config keys (they win over the ones this job writes).
    user_data: ClassVar[Mapping[str, Any]] = {}
    #: A NoCloud network-config (version 1 or 2 dict); None: the image's default.
    network_config: ClassVar[Mapping[str, Any] | None] = None

    def _files(self) -> _seediso.SeedFiles:
        key = public_key_line(type(self).__name__, self.public_key, self.key_filename)
        return _seediso.seed_files([key], self.username, self.hostname,
                                   dict(self.user_data), self.network_config)

    def _path(self) -> str:
        return os.path.abspath(os.path.expanduser(self.path))

    def _differs(self, files: _seediso.SeedFiles) -> str | None:
        path = self._path()
        try:
            label, found = _seediso.read_seed(path)
        except FileNotFoundError:
            return f"{path} does not exist"
        except (OSError, ValueError) as err:
            return f"{path} is not readable as a seed ({err})"
        if label != _seediso.LABEL:
            return f"{path} is labelled {label!r}, not {_seediso.LABEL!r}"
        if found != files:
            return f"{path} holds another seed (" + ", ".join(
                sorted(n for n in set(files) | set(found) if files.get(n) != found.get(n))
            ) + " differ)"
        return None

    def _result(self, files: _seediso.SeedFiles) -> dict[str, Any]:
        meta = files["meta-data"].decode()
        instance = meta.split('"instance-id": "', 1)[1].split('"', 1)[0]
        values = {"path": self._path(), "instance_id": instance,
                  "username": self.username, "hostname": self.hostname}
        publish(self.global_storage, type(self).__name__, values, {})
        return values

    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        files = self._files()
        why = self._differs(files)
        if why is not None:
            raise NotConvergedError(type(self).__name__, why)
        return self._result(files)

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: the seed ISO Run would write."""
        return _ssh_plans.seed_plan(self)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        files = self._files()
        path = self._path()
        if os.path.exists(path):
            log.warning("%s: rewriting the seed %s; a guest that booted from the old one "
                        "applies the new one only after a power cycle (shut down, start)",
                        type(self).__name__, path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            _seediso.write_seed(path, files)
        except OSError as err:
            raise SeedError(type(self).__name__, f"cannot write {path}: {err}") from None
        os.chmod(path, 0o644)


class AuthorizeSSHKey(SSHJob):
    """SSH to the guest with your key works (Kanku's PrepareSSH).

    ``method`` says how the key gets there when it does not yet:

    ``cloud-init``
        the guest's cloud-init writes it at boot from a
        :class:`CloudInitSeed` attached by ``CreateDomain(seed=...)``; Run
        waits up to ``timeout`` s for SSH with the key to work.
    ``console``
        Run logs in on the guest's serial console as ``username`` with
        ``console_password`` (libvirt's console stream of ``domain``, or the
        terminal device ``console_device``), appends the key to
        ``~/.ssh/authorized_keys`` (modes 0700/0600) and logs out; it waits
        up to ``timeout`` s for a login prompt.  The password is never
        logged, shown in errors or recorded.

    Check connects with ``key_filename`` only (no agent, no other keys,
    unless you set ``allow_agent`` / ``look_for_keys``) and keeps the
    connection for the SSH jobs of the run.  Host, port and host key options
    are those of :class:`~dojobber.contrib.ssh.SSHJob`.

    Records ``{"host", "ip", "port", "username", "method"}`` and sets the
    context key ``ip``, so ``address_from=<this job>`` works for the SSH jobs.
    """

    method: ClassVar[str] = REQUIRED
    #: The domain (its CreateDomain job, or a name) whose console to use.
    domain: ClassVar[Any] = None
    #: libvirt URI for the console; None: the CreateDomain job's, else qemu:///system.
    uri: ClassVar[str | None] = None
    #: A terminal device (serial line, pty) to log in on instead of libvirt's console.
    console_device: ClassVar[str | None] = None
    console_password: ClassVar[str | None] = None
    #: The public key line, or a file holding it; None: ``<key_filename>.pub``.
    public_key: ClassVar[str | None] = None
    #: Seconds Run waits for the guest (login prompt, or SSH accepting the key).
    timeout: ClassVar[float] = 600.0
    allow_agent: ClassVar[bool] = False
    look_for_keys: ClassVar[bool] = False

    @classmethod
    def variant(cls, name: str | None = None, /, **options: Any) -> Any:
        """As :meth:`SSHJob.variant`; checks ``method`` and its options now,
        and depends on ``domain`` when that is a job and no ``DEPS`` are given."""
        if name is None and options.get("console_password") is not None:
            shown = ", ".join(f"{k}={'***' if 'password' in k else repr(v)}"
                              for k, v in options.items())
            name = f"{cls.__name__}({shown})"
        made = super().variant(name, **with_default_deps(options, "address_from", "domain"))
        if made.method not in (*METHODS, REQUIRED):
            raise InvalidSSHOptionError(made.__name__, "method", made.method,
                                        f"use one of {', '.join(METHODS)}")
        if made.method == "console":
            if made.console_password is None:
                raise InvalidSSHOptionError(made.__name__, "console_password", None,
                                            "the console method logs in with a password")
            if made.domain is None and made.console_device is None:
                raise InvalidSSHOptionError(made.__name__, "domain", None,
                                            "the console method needs the domain (or "
                                            "console_device)")
        return made

    def _key(self) -> str:
        return public_key_line(type(self).__name__, self.public_key, self.key_filename)

    def _domain(self) -> tuple[str, str]:
        ref = self.domain
        if isinstance(ref, type) and issubclass(ref, Job):
            return str(getattr(ref, "name", ref.__name__)), str(
                self.uri or getattr(ref, "uri", None) or "qemu:///system")
        return str(ref), self.uri or "qemu:///system"

    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        job = type(self).__name__
        recheck = self._check_phase == "recheck"
        target = self._target()
        if not recheck:
            target = dataclasses.replace(target, retry_for=0.0)
        try:
            self._client(target)
        except (SSHAuthError, SSHConnectError) as err:
            if recheck and self._run_exception is not None:
                raise self._run_exception from None
            if recheck:
                raise
            raise NotConvergedError(job, f"SSH with the key does not work yet: {err}") \
                from None
        values = {"host": target.host, "ip": target.host, "port": target.port,
                  "username": target.username, "method": self.method}
        publish(self.global_storage, job, values, {"ip": target.host})
        return values

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: how Run would get the key onto the guest."""
        return _ssh_plans.authorize_key_plan(self)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        if self.method == "console":
            self._run_console()
        else:
            self._wait_for_cloud_init()

    def _wait_for_cloud_init(self) -> None:
        job = type(self).__name__
        deadline = time.monotonic() + float(self.timeout)
        last: SSHJobError | None = None
        while True:
            left = deadline - time.monotonic()
            target = dataclasses.replace(self._target(), retry_for=max(0.0, left))
            try:
                self._client(target)
                return
            except SSHAuthError as err:  # sshd runs; cloud-init may not be done yet
                last = err
            except SSHConnectError as err:
                last = err
                break
            if time.monotonic() + float(self.retry_interval) > deadline:
                break
            time.sleep(float(self.retry_interval))
        raise SSHJobError(job, f"SSH with the key still fails after {float(self.timeout):g} s "
                          f"({last}); check the image runs cloud-init, the seed is attached "
                          "(CreateDomain seed=...), and, if the key changed after the first "
                          "boot, power-cycle the guest or recreate it")

    def _open_console(self) -> _console.Port:
        if self.console_device:
            try:
                return _console.TtyPort(self.console_device)
            except OSError as err:
                raise ConsoleError(type(self).__name__, self.console_device,
                                   f"cannot open it: {err.strerror}") from None
        import libvirt

        from ._libvirtconsole import LibvirtConsole

        name, uri = self._domain()
        try:
            conn = libvirt.open(uri)
            try:
                return LibvirtConsole(conn, conn.lookupByName(name), uri)
            except BaseException:
                conn.close()
                raise
        except libvirt.libvirtError as err:
            raise ConsoleError(type(self).__name__, f"{name} on {uri}",
                               f"cannot open it: {err.get_error_message()}") from None

    def _run_console(self) -> None:
        key = self._key()
        port = self._open_console()
        try:
            found = _console.authorize_on_console(
                port, type(self).__name__, self.username, str(self.console_password), key,
                float(self.timeout))
        finally:
            port.close()
        if found:
            log.info("%s: the console was already logged in as %s", type(self).__name__,
                     self.username)
