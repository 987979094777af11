"""Bundled jobs that converge a host over SSH: run commands, copy files.

Needs the ``ssh`` extra (``pip install dojobber[ssh]``, paramiko).
Configure with :meth:`~dojobber.Job.variant`::

    Setup = RunCommands.variant(
        "vm1 setup", address_from=VmIp,             # or host="203.0.113.7"
        commands=["zypper -n in nginx", "systemctl enable --now nginx"],
        check_command="systemctl is-active nginx",
    )
    Conf = CopyFiles.variant("vm1 conf", address_from=VmIp,
                             files=[("nginx.conf", "/etc/nginx/nginx.conf")])

The host is, in this order: the ``host`` option; the ``ip`` in the result of
the job ``address_from`` (the port is its ``port`` when ``port`` is unset);
the ``ip`` in the result of the one direct dependency that has one; the job
context key ``ip`` (see :mod:`dojobber.contrib._runscope`).  One connection per
(host, port, user) is shared by the jobs of a run in one process and closed
at Cleanup.  Host keys are verified against ``known_hosts`` by default (see
:mod:`dojobber.contrib._sshconn` and docs/ssh.rst).  Output lines are logged
on the ``dojobber.contrib.ssh`` logger at INFO, which the engine attributes
to the running job (``Listener.log``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import paramiko

from ..errors import NoActError
from ..job import REQUIRED, Job
from . import _ssh_plans, _sshconn
from ._runscope import (
    NotConvergedError,
    context_value,
    job_result,
    publish,
    results_of_deps,
    run_pool,
    with_default_deps,
)
from .ssh_errors import (
    CheckCommandError,
    CommandFailedError,
    InvalidSSHOptionError,
    NoHostError,
    SSHJobError,
)

__all__ = ["CopyFiles", "RunCommands", "SSHJob"]

log = logging.getLogger(__name__)

_POOL_KEY = "dojobber.contrib.ssh:connections"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}\s")


def _close(client: paramiko.SSHClient) -> None:
    client.close()


class SSHJob(Job):
    """Base of the SSH jobs: where to connect and how."""

    #: Host name or address; takes precedence over any recorded address.
    host: ClassVar[str | None] = None
    #: A job (class or name; e.g. a WaitForAddress variant) whose result's ``ip`` is the host.
    address_from: ClassVar[Any] = None
    #: None: the ``port`` in ``address_from``'s result (a forwarded port), else 22.
    port: ClassVar[int | None] = None
    username: ClassVar[str] = "root"
    #: Private key file; with allow_agent / look_for_keys as in paramiko.
    key_filename: ClassVar[str | None] = None
    #: Login password (offered to the server).  Never put a key's passphrase here.
    password: ClassVar[str | None] = None
    #: Passphrase of an encrypted private key (used here only, never sent).
    passphrase: ClassVar[str | None] = None
    allow_agent: ClassVar[bool] = True
    look_for_keys: ClassVar[bool] = True
    #: "verify" (default), "accept-new" or "insecure".
    host_key_policy: ClassVar[str] = "verify"
    #: None: ~/.ssh/known_hosts
    known_hosts: ClassVar[str | None] = None
    #: Seconds for one TCP connect / banner / authentication.
    connect_timeout: ClassVar[float] = 10.0
    #: Keep retrying this many seconds while sshd is not up (a booting
    #: machine); 0: a refused or unreachable host fails the attempt at once.
    connect_retry_for: ClassVar[float] = 0.0
    retry_interval: ClassVar[float] = 2.0
    #: Longest one attempt may take (connecting while the machine boots,
    #: then every command, each bounded by its own ``timeout``).
    TIMEOUT = 3600.0

    @classmethod
    def variant(cls, name: str | None = None, /, **options: Any) -> Any:
        """As :meth:`Job.variant`; checks option values now, and depends on
        ``address_from`` when that is a job and no ``DEPS`` are given."""
        secret = ("password", "passphrase")
        if name is None and any(options.get(k) is not None for k in secret):
            shown = ", ".join(f"{k}={'***' if k in secret else repr(v)}"
                              for k, v in options.items())
            name = f"{cls.__name__}({shown})"
        made = super().variant(name, **with_default_deps(options, "address_from"))
        if made.host_key_policy not in _sshconn.POLICIES:
            raise InvalidSSHOptionError(made.__name__, "host_key_policy",
                                        made.host_key_policy,
                                        f"use one of {', '.join(_sshconn.POLICIES)}")
        _check_numbers(made, options)
        return made

    # -- connection ------------------------------------------------------------
    def _host(self) -> str:
        job = type(self).__name__
        if self.host:
            return str(self.host)
        store = self.global_storage
        if self.address_from is not None:
            value = job_result(store, self.address_from) or {}
            if value.get("ip"):
                return str(value["ip"])
            raise NoHostError(job, f"job {self.address_from!r} recorded no 'ip'; put it "
                              "in DEPS so it runs first")
        found = results_of_deps(type(self), store, "ip")
        if len(found) == 1:
            return str(found[0][1])
        if len(found) > 1:
            raise NoHostError(job, "several dependencies recorded an address ("
                              + ", ".join(n for n, _ in found) + "); choose one with "
                              "address_from")
        if context_value(store, "ip"):
            return str(context_value(store, "ip"))
        raise NoHostError(job, "no host: set the host option, or depend on a job that "
                          "publishes an 'ip' (WaitForAddress) and set address_from")

    def _port(self) -> int:
        if self.port is not None:
            return int(self.port)
        if self.address_from is not None:
            value = (job_result(self.global_storage, self.address_from) or {}).get("port")
            if value is not None:
                return int(value)
        return 22

    def _target(self) -> _sshconn.Target:
        return _sshconn.Target(
            job=type(self).__name__, host=self._host(), port=self._port(),
            username=self.username, policy=self.host_key_policy,
            known_hosts=os.path.expanduser(self.known_hosts or
                                           _sshconn.default_known_hosts()),
            key_filename=self.key_filename and os.path.expanduser(self.key_filename),
            password=self.password, passphrase=self.passphrase, allow_agent=self.allow_agent,
            look_for_keys=self.look_for_keys, connect_timeout=float(self.connect_timeout),
            retry_for=float(self.connect_retry_for),
            retry_interval=float(self.retry_interval),
        )

    def _client(self, target: _sshconn.Target) -> paramiko.SSHClient:
        pool = run_pool(self.global_storage, _POOL_KEY, _close)
        return pool.get(target.key(), lambda: _sshconn.connect(target), _sshconn.alive)

    def _explain(self, err: NotConvergedError) -> NotConvergedError | BaseException:
        """On the recheck after a Run that raised, Run's error says more."""
        if self._check_phase == "recheck" and self._run_exception is not None:
            return self._run_exception
        return err

    def Cleanup(self) -> None:
        """Close the run's SSH connections."""
        if self.global_storage is not None and _POOL_KEY in self.global_storage:
            self.global_storage[_POOL_KEY].close_all()


class RunCommands(SSHJob):
    """Commands have run on the host (or ``check_command`` says they need not).

    With ``check_command``: Check runs it and passes when it exits 0, so a
    converged host runs nothing; after Run it must exit 0, else
    :class:`CheckCommandError`.  Without it the job is a RunonlyJob: the
    commands run every time (and in no_act mode the job fails without running).

    Run runs ``commands`` in order and stops at the first that exits non-zero
    (:class:`CommandFailedError` with command, status and output tail) or
    outlasts ``timeout`` (:class:`CommandTimeoutError`).  ``environment`` is
    exported (POSIX shell syntax) before each command.

    Records ``{"host", "commands"}`` as its result in the job context.
    """

    commands: ClassVar[Sequence[str]] = REQUIRED
    check_command: ClassVar[str | None] = None
    environment: ClassVar[Mapping[str, str]] = {}
    #: Seconds per command (None: no limit).
    timeout: ClassVar[float | None] = 600.0
    #: Lines of output kept for error messages.
    tail_lines: ClassVar[int] = 20

    @classmethod
    def variant(cls, name: str | None = None, /, **options: Any) -> Any:
        made = super().variant(name, **options)
        if isinstance(made.commands, str):
            raise InvalidSSHOptionError(made.__name__, "commands", made.commands,
                                        "give a list of commands")
        for key in made.environment:
            if not _ENV_NAME.match(key):
                raise InvalidSSHOptionError(made.__name__, "environment", key,
                                            "variable names are letters, digits and _")
        return made

    def _run(self, target: _sshconn.Target, command: str,
             level: int = logging.INFO) -> tuple[int, list[str]]:
        client = self._client(target)
        full = _sshconn.with_environment(command, self.environment)
        timeout = None if self.timeout is None else float(self.timeout)
        try:
            return _sshconn.run_command(client, target, full, timeout, int(self.tail_lines),
                                        level)
        except (paramiko.SSHException, OSError, EOFError) as err:
            run_pool(self.global_storage, _POOL_KEY, _close).discard(target.key())
            raise SSHJobError(target.job, f"connection to {target.name} failed while "
                              f"running {command!r}: {err or type(err).__name__}") from None

    def _result(self, target: _sshconn.Target) -> dict[str, Any]:
        values = {"host": target.host, "commands": list(self.commands)}
        publish(self.global_storage, type(self).__name__, values, {})
        return values

    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        job = type(self).__name__
        recheck = self._check_phase == "recheck"
        if self.check_command is None:
            if not recheck:
                if self._no_act:
                    raise NoActError(job)
                raise NotConvergedError(job, "no check_command: the commands run every time")
            if self._run_exception is not None:
                raise self._run_exception
            return self._result(self._target())
        target = self._target()
        status, tail = self._run(target, self.check_command, logging.DEBUG)
        if status == 0:
            return self._result(target)
        if recheck and self._run_exception is not None:
            raise self._run_exception
        if recheck:
            raise CheckCommandError(job, target.name, self.check_command, status, tail)
        raise NotConvergedError(job, f"check_command exited {status}")

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: where, and which commands Run would run."""
        return _ssh_plans.run_commands_plan(self)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        target = self._target()
        for command in self.commands:
            log.info("[%s] $ %s", target.host, command)
            status, tail = self._run(target, command)
            if status != 0:
                raise CommandFailedError(type(self).__name__, target.name, command, status,
                                         tail)


#: Numeric options: (name, smallest, whether the smallest is allowed, whole).
_NUMBERS = (
    ("port", 1, True, True),
    ("connect_timeout", 0, False, False),
    ("connect_retry_for", 0, True, False),
    ("retry_interval", 0, False, False),
    ("timeout", 0, False, False),
    ("tail_lines", 0, True, True),
)


def _check_numbers(made: type, options: dict[str, Any]) -> None:
    """The numeric options given to variant(): finite, in range."""
    for key, low, inclusive, whole in _NUMBERS:
        if options.get(key) is None:  # not given, or None: the default / no limit
            continue
        value = options[key]
        kind = "a whole number" if whole else "a number of seconds"
        ok = not isinstance(value, bool) and isinstance(value, (int,) if whole else (int, float))
        if ok:
            ok = math.isfinite(value) and (value >= low if inclusive else value > low)
            if key == "port":
                ok = ok and value <= 65535
        if not ok:
            bound = "1 to 65535" if key == "port" else f"{'>=' if inclusive else '>'} {low}"
            raise InvalidSSHOptionError(made.__name__, key, value, f"give {kind} {bound}")


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class CopyFiles(SSHJob):
    """Local files are on the host with the same content (sha256).

    ``files`` is a list of ``(local path, remote path)``.  Check passes when
    every remote file's sha256 (and ``mode``, when set) matches.  Run uploads
    the others over SFTP to ``<remote>.dojobber-part`` and renames it into
    place, so a failed copy never leaves a half-written file; missing remote
    directories are made.

    Records ``{"host", "files": {remote: sha256}}`` as its result in the job
    context.
    """

    files: ClassVar[Sequence[tuple[str, str]]] = REQUIRED
    #: Permission bits of the remote files (e.g. 0o644); None: leave as made.
    mode: ClassVar[int | None] = None

    def _sftp(self, target: _sshconn.Target) -> paramiko.SFTPClient:
        client = self._client(target)
        try:
            return client.open_sftp()
        except paramiko.SSHException as err:
            if _sshconn.alive(client) and "closed" in str(err).lower():
                raise SSHJobError(
                    target.job, f"{target.name} has no SFTP: its sshd refused the sftp "
                    "subsystem (the channel was closed); enable it in sshd_config "
                    "(Subsystem sftp internal-sftp) to copy files") from None
            raise SSHJobError(target.job, f"SFTP to {target.name} failed: {err}") from None

    def _remote_sha256(self, sftp: paramiko.SFTPClient, path: str,
                       target: _sshconn.Target) -> str | None:
        """The remote file's sha256 (None when missing or of another mode):
        from ``sha256sum`` on the host, else by reading it over SFTP."""
        try:
            info = sftp.stat(path)
        except FileNotFoundError:
            return None
        if self.mode is not None and stat.S_IMODE(info.st_mode or 0) != self.mode:
            return None
        status, lines = _sshconn.run_command(
            self._client(target), target, "sha256sum -- " + _sshconn.quote(path), 60.0,
            level=logging.DEBUG)
        if status == 0 and lines and _SHA256.match(lines[-1]):
            return lines[-1][:64]
        digest = hashlib.sha256()
        with sftp.open(path, "rb") as f:
            f.prefetch()
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def _differing(self, sftp: paramiko.SFTPClient,
                   target: _sshconn.Target) -> dict[str, tuple[str, str]]:
        """remote -> (local, sha256) for files not yet in place."""
        todo = {}
        for local, remote in self.files:
            path = os.path.expanduser(local)
            if not os.path.isfile(path):
                raise SSHJobError(target.job, f"local file {local} does not exist; fix the "
                                  "files option")
            want = _sha256_file(path)
            if self._remote_sha256(sftp, remote, target) != want:
                todo[remote] = (local, want)
        return todo

    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        target = self._target()
        sftp = self._sftp(target)
        try:
            todo = self._differing(sftp, target)
        finally:
            sftp.close()
        if todo:
            if self.storage is not None:  # for Plan
                self.storage[_ssh_plans.DIFFERING] = {r: local for r, (local, _) in todo.items()}
            err = NotConvergedError(type(self).__name__, "differs on the host: "
                                    + ", ".join(sorted(todo)))
            raise self._explain(err)
        values = {"host": target.host,
                  "files": {remote: _sha256_file(os.path.expanduser(local))
                            for local, remote in self.files}}
        publish(self.global_storage, type(self).__name__, values, {})
        return values

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: which files Run would upload, where."""
        return _ssh_plans.copy_files_plan(self)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        target = self._target()
        sftp = self._sftp(target)
        try:
            for remote, (local, _) in self._differing(sftp, target).items():
                self._makedirs(sftp, posixpath.dirname(remote))
                part = remote + ".dojobber-part"
                try:
                    sftp.put(os.path.expanduser(local), part)
                    if self.mode is not None:
                        sftp.chmod(part, self.mode)
                    sftp.posix_rename(part, remote)
                except BaseException:
                    with contextlib.suppress(OSError):
                        sftp.remove(part)
                    raise
                log.info("[%s] copied %s to %s", target.host, local, remote)
        finally:
            sftp.close()

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
        if path in ("", "/"):
            return
        try:
            sftp.stat(path)
        except FileNotFoundError:
            CopyFiles._makedirs(sftp, posixpath.dirname(path))
            sftp.mkdir(path)
