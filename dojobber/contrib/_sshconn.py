"""Connections and command execution for :mod:`dojobber.contrib.ssh`.

Host key policies (option ``host_key_policy``):

``verify`` (default)
    the host's key must be in ``known_hosts``; an unknown key raises
    :class:`HostKeyUnknownError`;
``accept-new``
    like OpenSSH's ``StrictHostKeyChecking=accept-new``: an unknown key is
    appended to ``known_hosts`` (logged), a changed one is still refused;
``insecure``
    any key is accepted and nothing is recorded; every connect logs a warning.

With ``verify`` and ``accept-new`` a key that differs from the recorded one
raises :class:`HostKeyChangedError`.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import paramiko

from .ssh_errors import (
    CommandTimeoutError,
    HostKeyChangedError,
    HostKeyUnknownError,
    SSHAuthError,
    SSHConnectError,
    SSHJobError,
)

log = logging.getLogger("dojobber.contrib.ssh")

POLICIES = ("verify", "accept-new", "insecure")
_EOF_WAIT = 2.0
_known_hosts_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as OpenSSH shows it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def default_known_hosts() -> str:
    return os.path.expanduser("~/.ssh/known_hosts")


@dataclass(frozen=True)
class Target:
    """Where and how to connect (everything but secrets is in the pool key)."""

    job: str
    host: str
    port: int
    username: str
    policy: str
    known_hosts: str
    key_filename: str | None
    password: str | None = field(repr=False)
    passphrase: str | None = field(repr=False)
    allow_agent: bool
    look_for_keys: bool
    connect_timeout: float
    retry_for: float
    retry_interval: float

    @property
    def name(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def key(self) -> tuple[Any, ...]:
        return (self.host, self.port, self.username, self.policy, self.known_hosts)


class _Verify(paramiko.MissingHostKeyPolicy):
    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise HostKeyUnknownError(self.target.job, hostname, fingerprint(key),
                                  self.target.known_hosts)


class _AcceptNew(_Verify):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        path = self.target.known_hosts
        client.get_host_keys().add(hostname, key.get_name(), key)
        with _known_hosts_lock:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            with open(path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                line = f"{hostname} {key.get_name()} {key.get_base64()}\n".encode("ascii")
                if f.tell():  # a last line without its newline gets one first
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
                f.write(line)
        log.info("accept-new: recorded host key of %s (%s) in %s", hostname,
                 fingerprint(key), path)


class _Insecure(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        """Accept any key (the connect already logged the warning)."""


def connect(target: Target) -> paramiko.SSHClient:
    """An authenticated client; retries while the host's sshd is not up."""
    deadline = time.monotonic() + max(0.0, target.retry_for)
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        client = paramiko.SSHClient()
        if target.policy == "insecure":
            log.warning("insecure host key policy: the host key of %s is NOT verified "
                        "(use only for throw-away machines)", target.name)
            client.set_missing_host_key_policy(_Insecure())
        else:
            if os.path.exists(target.known_hosts):
                client.load_host_keys(target.known_hosts)
            policy = _AcceptNew(target) if target.policy == "accept-new" else _Verify(target)
            client.set_missing_host_key_policy(policy)
        try:
            # The passphrase only decrypts the key; paramiko offers
            # ``password`` to the server, so it never holds the passphrase.
            client.connect(
                target.host, target.port, target.username, password=target.password,
                passphrase=target.passphrase, key_filename=target.key_filename,
                allow_agent=target.allow_agent,
                look_for_keys=target.look_for_keys, timeout=target.connect_timeout,
                banner_timeout=target.connect_timeout, auth_timeout=target.connect_timeout,
            )
            return client
        except paramiko.BadHostKeyException as err:
            client.close()
            raise HostKeyChangedError(target.job, target.name, fingerprint(err.key),
                                      fingerprint(err.expected_key),
                                      target.known_hosts) from None
        except paramiko.AuthenticationException as err:
            client.close()
            raise SSHAuthError(target.job, target.name, str(err) or type(err).__name__) \
                from None
        except SSHJobError:
            client.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as err:
            client.close()
            reason = _reason(err, target)
            now = time.monotonic()
            if now + target.retry_interval > deadline:
                raise SSHConnectError(target.job, target.name, reason, now - started,
                                      tries) from None
            log.info("%s not reachable yet (%s); retry %d in %g s", target.name, reason,
                     tries, target.retry_interval)
            time.sleep(target.retry_interval)


def _reason(err: BaseException, target: Target) -> str:
    """Why a connection failed, in words (refused, unreachable, timed out)."""
    causes: list[BaseException] = [err]
    if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
        causes = [e for e in err.errors.values() if e is not None] or causes
    first = causes[0]
    if isinstance(first, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(first, TimeoutError) or "timed out" in str(first).lower():
        return f"no answer within connect_timeout={target.connect_timeout:g} s"
    if getattr(first, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"host unreachable ({first})"
    return str(first) or type(first).__name__


def alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def with_environment(command: str, environment: Mapping[str, str]) -> str:
    """``command`` after POSIX-shell exports of ``environment`` (sshd's
    AcceptEnv usually refuses environment requests, so they are not used)."""
    if not environment:
        return command
    exports = "".join(f"export {k}={quote(str(v))}; " for k, v in environment.items())
    return exports + command


def quote(value: str) -> str:
    """``value`` quoted for a POSIX shell."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


class _Lines:
    """Splits a byte stream into lines, logs them, keeps the tail."""

    def __init__(self, prefix: str, level: int, tail: deque[str]) -> None:
        self.prefix = prefix
        self.level = level
        self.tail = tail
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self.buffer:
            self._emit(self.buffer)
            self.buffer = b""

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(line)
        log.log(self.level, "%s%s", self.prefix, line)


def run_command(client: paramiko.SSHClient, target: Target, command: str,
                timeout: float | None, tail_lines: int = 20,
                level: int = logging.INFO) -> tuple[int, list[str]]:
    """Run ``command``; log its output lines at ``level``; return
    ``(exit status, last lines)``.  Raises CommandTimeoutError after
    ``timeout`` seconds (None: no limit)."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise SSHJobError(target.job, f"connection to {target.name} is closed")
    tail: deque[str] = deque(maxlen=tail_lines)
    out = _Lines(f"[{target.host}] ", level, tail)
    err = _Lines(f"[{target.host} stderr] ", level, tail)
    chan = transport.open_session(timeout=target.connect_timeout)
    try:
        chan.exec_command(command)
        chan.shutdown_write()
        deadline = None if timeout is None else time.monotonic() + timeout
        exited_at: float | None = None
        while True:
            while chan.recv_ready():
                out.feed(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.feed(chan.recv_stderr(65536))
            # sshd may report the exit status before it sent the last output:
            # wait for the end of output too (at most _EOF_WAIT s, for a
            # command that left a background process holding its output).
            if chan.exit_status_ready() and exited_at is None:
                exited_at = time.monotonic()
            if exited_at is not None and not chan.recv_ready() \
                    and not chan.recv_stderr_ready() \
                    and (chan.eof_received or time.monotonic() - exited_at > _EOF_WAIT):
                break
            wait = 0.5
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    out.flush()
                    err.flush()
                    raise CommandTimeoutError(target.job, target.name, command,
                                              float(timeout or 0), list(tail))
                wait = min(wait, 0.5)
            select.select([chan], [], [], 0.05 if exited_at is not None else wait)
        out.flush()
        err.flush()
        return chan.recv_exit_status(), list(tail)
    finally:
        chan.close()
