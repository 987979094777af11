"""A guest's serial console on a real pseudo-terminal, for the console tests.

:class:`SerialGuest` opens a pty pair and starts this module as a child
process holding the master side, as QEMU holds the host side of a guest's
``<serial type='pty'>``: the job under test opens the slave path
(``guest.device``, a ``/dev/pts/N``) like any terminal device.  The child
plays getty and login: after ``boot_delay`` seconds (input before that is
lost, as while a guest boots) it shows a banner and ``login:`` (or, with
``prompt_on_enter``, only after Enter arrives), reads the user (echoed) and
the password (not echoed), answers ``Login incorrect`` to a wrong one, and
for the right one runs a real ``/bin/sh -i`` in its own pty with ``HOME``
set to ``home``, relaying bytes both ways until the shell exits; then it
shows ``login:`` again.  ``logged_in=True`` starts with the shell already
running; ``shell_user`` makes ``id -un`` in that shell print another name.
``echo_only=True`` is a console no getty reads (a guest whose getty never
started): what is typed only comes back as the terminal's echo, CR as CR LF.

The password reaches the child in its environment, never on a command line.
``guest.transcript()`` is everything the child received (for asserting what
was typed).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["SerialGuest"]

PASSWORD_ENV = "FAKE_GUEST_PASSWORD"


class SerialGuest:
    """The child process and the pty; see the module docstring."""

    def __init__(self, directory: Path, user: str, password: str, *, boot_delay: float = 0.0,
                 prompt_on_enter: bool = False, logged_in: bool = False,
                 shell_user: str | None = None, echo_only: bool = False) -> None:
        self.dir = Path(directory)
        self.home = self.dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "received.log"
        master, self._slave = os.openpty()
        self.device = os.ttyname(self._slave)
        args = [sys.executable, "-m", "tests.fakes.serial_console", "--fd", str(master),
                "--user", user, "--home", str(self.home), "--log", str(self.log),
                "--boot-delay", str(boot_delay)]
        if prompt_on_enter:
            args.append("--prompt-on-enter")
        if logged_in:
            args.append("--logged-in")
        if shell_user:
            args += ["--shell-user", shell_user]
        if echo_only:
            args.append("--echo-only")
        env = dict(os.environ, **{PASSWORD_ENV: password})
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        self.proc = subprocess.Popen(args, pass_fds=[master], env=env,
                                     stdin=subprocess.DEVNULL)
        os.close(master)

    def transcript(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1

    def __enter__(self) -> SerialGuest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# -- the child -------------------------------------------------------------
class _Console:
    def __init__(self, fd: int, log: Path) -> None:
        self.fd = fd
        self.log = open(log, "ab", buffering=0)  # noqa: SIM115 (lives as long as the child)
        self.pending = b""  # read but not yet consumed (typed ahead)

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read(self, timeout: float | None = None) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # nobody has the terminal open right now
            time.sleep(0.05)
            return b""
        self.log.write(data)
        return data

    def read_line(self, echo: bool) -> str:
        line = b""
        while True:
            if not self.pending:
                self.pending = self.read()
            while self.pending:
                char, self.pending = self.pending[:1], self.pending[1:]
                if char in (b"\r", b"\n"):
                    self.write("\r\n")
                    return line.decode(errors="replace")
                line += char
                if echo:
                    os.write(self.fd, char)


def _shell(console: _Console, home: str, shell_user: str | None) -> None:
    env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PS1": "root@guest:~# ", "TERM": "vt100"}
    if shell_user:
        bin_dir = Path(home).parent / "fake-bin"
        bin_dir.mkdir(exist_ok=True)
        fake_id = bin_dir / "id"
        fake_id.write_text(f"#!/bin/sh\necho {shell_user}\n")
        fake_id.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(home)
        os.execve("/bin/sh", ["sh", "-i"], env)
    try:
        while True:
            ready, _, _ = select.select([console.fd, fd], [], [])
            if fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                os.write(console.fd, data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
            if console.fd in ready or console.pending:
                data, console.pending = console.pending + console.read(0), b""
                if data:
                    os.write(fd, data)
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--boot-delay", type=float, default=0.0)
    parser.add_argument("--prompt-on-enter", action="store_true")
    parser.add_argument("--logged-in", action="store_true")
    parser.add_argument("--shell-user")
    parser.add_argument("--echo-only", action="store_true")
    args = parser.parse_args()
    password = os.environ.pop(PASSWORD_ENV)
    console = _Console(args.fd, Path(args.log))
    if args.echo_only:
        while True:  # no getty: the line discipline echoes, nobody answers
            os.write(console.fd, console.read().replace(b"\r", b"\r\n"))
    booted = time.monotonic() + args.boot_delay
    while time.monotonic() < booted:
        console.read(max(0.0, booted - time.monotonic()))  # lost while booting
    if args.logged_in:
        _shell(console, args.home, args.shell_user)
    banner = "\r\nDebian GNU/Linux 12 guest ttyS0\r\n\r\n"
    if args.prompt_on_enter:
        while b"\r" not in console.pending:
            console.pending += console.read()
        console.pending = console.pending.split(b"\r", 1)[1]
    while True:
        console.write(banner + "guest login: ")
        user = console.read_line(echo=True)
        if not user:
            continue
        console.write("Password: ")
        given = console.read_line(echo=False)
        time.sleep(0.3)
        if user == args.user and given == password:
            _shell(console, args.home, None)
        else:
            console.write("\r\nLogin incorrect\r\n")


if __name__ == "__main__":
    main()
