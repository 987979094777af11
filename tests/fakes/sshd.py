"""A real OpenSSH ``sshd`` on 127.0.0.1 for tests.

:class:`Sshd` makes a throw-away host key, client key, ``authorized_keys``
and config in a directory, runs ``/usr/sbin/sshd -D -e -f CONFIG`` on a free
loopback port, waits (bounded) until it answers with an SSH banner, and
stops it at :meth:`stop`.  It logs in the user running the tests with the
client key (or with the keys of the file ``authorized_keys``, when given).
As root, ``/run/sshd`` (privilege separation) is created.

    with Sshd(tmp_path) as server:
        server.host, server.port, server.client_key, server.known_hosts_line()
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

__all__ = ["SSHD", "Sshd", "free_port", "keygen", "sshd_available"]

SSHD = "/usr/sbin/sshd"


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, passphrase: str = "") -> Path:
    """A new ed25519 key pair at ``path`` (+ ``.pub``), passphrase-less by default."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "dojobber-test",
                    "-f", str(path)], check=True, timeout=30)
    return path


class Sshd:
    """One sshd process; see the module docstring."""

    def __init__(self, directory: Path, port: int | None = None,
                 host_key: Path | None = None, client_key: Path | None = None,
                 authorized_keys: Path | None = None,
                 *, sftp: bool = True, password_auth: bool = False,
                 log_level: str = "ERROR") -> None:
        """``sftp``: offer the sftp subsystem; ``password_auth``: accept
        password logins (the attempts show in :attr:`log` at ``DEBUG1``)."""
        self.sftp = sftp
        self.password_auth = password_auth
        self.log_level = log_level
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.username = getpass.getuser()
        self.host_key = host_key or keygen(self.dir / "host_ed25519")
        self.client_key = client_key or keygen(self.dir / "client_ed25519")
        #: None: a file with the client key; else this file as it is (the
        #: tests that authorize the key themselves).
        self.authorized_keys = authorized_keys
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def host_public_key(self) -> str:
        """``type base64`` of the host key."""
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key()}\n"

    def _write_config(self) -> None:
        authorized = self.authorized_keys
        if authorized is None:
            authorized = self.dir / "authorized_keys"
            authorized.write_text(Path(f"{self.client_key}.pub").read_text())
            authorized.chmod(0o600)
        self.config.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {self.host}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "StrictModes no\n"
            "PubkeyAuthentication yes\n"
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "PermitRootLogin prohibit-password\n"
            "MaxStartups 50\n"
            "MaxSessions 50\n"
            f"LogLevel {self.log_level}\n"
            + ("Subsystem sftp internal-sftp\n" if self.sftp else "")
        )

    def start(self, wait: float = 15.0) -> Sshd:
        """Start sshd and wait until it sends its banner (at most ``wait`` s)."""
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self._write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on port {self.port} within {wait} s")

    def stop(self) -> None:
        """Stop sshd (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
