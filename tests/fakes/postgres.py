"""A real PostgreSQL server on 127.0.0.1 for tests and benchmarks.

:class:`PostgresServer` runs ``initdb`` into a fresh temporary directory as
an unprivileged user (as root: ``nobody``, since the server refuses to run
as root), then ``pg_ctl start`` on a free loopback port with its unix socket
in that directory, and removes it all at :meth:`stop`.  Clients log in over
TCP with a password (``scram-sha-256``), so URLs carry credentials the way
an operator's do; :meth:`create_database` gives each test its own database.

    with PostgresServer() as server:
        url = server.create_database()   # postgresql://dojo:...@127.0.0.1:PORT/t1
        server.restart()                  # a real stop and start of the server
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PostgresServer", "pg_bin_dir"]

#: The user the server runs as when the tests run as root.
SERVER_USER = "nobody"
USER = "dojo"
PASSWORD = "s3cret-pw"


def pg_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` with ``initdb`` and ``pg_ctl``
    (Debian's layout), else the directory of ``pg_ctl`` on PATH, else None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One server; see the module docstring.  ``fast``: no fsync (tests);
    benchmarks pass ``fast=False`` to measure durable commits."""

    def __init__(self, fast: bool = True) -> None:
        bindir = pg_bin_dir()
        if bindir is None:
            raise FileNotFoundError(
                "PostgreSQL's initdb/pg_ctl not found (Debian: apt-get install postgresql)")
        self.bin = bindir
        self.fast = fast
        self.dir = Path(tempfile.mkdtemp(prefix="dojobber-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user, self.password = USER, PASSWORD
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self._count = 0
        self.started = False

    def _run(self, *argv: str, timeout: float = 120) -> None:
        proc = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout, **self._as)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {proc.stderr}\n{log}")

    def start(self) -> PostgresServer:
        if not self.data.exists():
            pwfile = self.dir / "pw"
            pwfile.write_text(self.password + "\n")
            if self._as:
                os.chown(pwfile, self._as["user"], self._as["group"])
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                      f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                      "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
            pwfile.unlink()
        options = [f"-p {self.port}", f"-k {self.dir}", f"-c listen_addresses={self.host}",
                   "-c max_connections=200", "-c shared_buffers=32MB"]
        if self.fast:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", " ".join(options), "-w", "-t", "60", "start")
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode,
                      "-w", "-t", "60", "stop")
            self.started = False

    def restart(self, down: float = 0.0) -> None:
        """Stop the server (connections are cut), stay down ``down`` seconds,
        start it again on the same port."""
        self.stop("fast")
        time.sleep(down)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", password: bool = True) -> str:
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL (with the password)."""
        import psycopg

        if name is None:
            self._count += 1
            name = f"t{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()
