"""Log in on a serial console and authorize an SSH key (console method of
:class:`~dojobber.contrib.prepare_ssh.AuthorizeSSHKey`).

The dialogue runs over a :class:`Port`: bytes in, bytes out.  Two ports
exist: :class:`TtyPort` (a serial line or pseudo-terminal by path, e.g. the
``/dev/pts/N`` that ``virsh ttyconsole`` names) and the libvirt console
stream (:mod:`dojobber.contrib._libvirtconsole`).

The dialogue:

1. wake the console (Enter), and keep pressing Enter every few seconds
   while it shows nothing useful (a guest still booting shows its login
   prompt late);
2. at ``login:`` send the user, at ``Password:`` the password; ``Login
   incorrect`` (or the login prompt again) is :class:`ConsoleLoginError`;
3. at a shell prompt, prove it is a shell and whose with a marker command
   (``echo`` of a random nonce, ``id -un`` and an arithmetic result, which the
   echo of the typed line cannot match); a shell of another user is logged
   out first, a console already logged in as the user is used as it is;
4. write the key into ``~/.ssh/authorized_keys`` (directory 0700, file 0600,
   SELinux labels restored where ``restorecon`` exists; an existing line is
   not added twice) and read the command's status the same way;
5. log out.

The password is sent only right after a password prompt and never logged:
console text is logged at DEBUG and kept for errors with any occurrence of
the password replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import select
import termios
import time
import tty
from collections import deque
from typing import Protocol

from ._sshconn import quote
from .ssh_errors import (
    ConsoleCommandError,
    ConsoleError,
    ConsoleLoginError,
    ConsoleTimeoutError,
)

__all__ = ["Port", "TtyPort", "authorize_on_console", "key_command"]

log = logging.getLogger("dojobber.contrib.ssh")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]"
                   r"|\x1b[=>]")
_LOGIN = re.compile(r"login:\s*$")
_PASSWORD = re.compile(r"[Pp]assword(?: for [^:]*)?:\s*$")
_INCORRECT = re.compile(r"Login incorrect|Authentication failure|Permission denied")
_PROMPT = re.compile(r"[#$%>]\s*$")
#: Seconds of silence after which Enter is pressed again.
POKE_AFTER = 4.0


class Port(Protocol):
    """A byte stream to a console."""

    name: str

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes:
        """What arrived within ``timeout`` s (b"" for nothing); raises
        EOFError when the console closed."""
        ...

    def close(self) -> None: ...


class TtyPort:
    """A terminal device (serial line, pseudo-terminal) opened raw."""

    def __init__(self, path: str) -> None:
        self.name = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        # Not a terminal (a FIFO, a socket file): used as it is.
        with contextlib.suppress(termios.error):
            tty.setraw(self.fd, termios.TCSANOW)

    def send(self, data: bytes) -> None:
        while data:
            try:
                sent = os.write(self.fd, data)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            data = data[sent:]

    def recv(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as err:  # EIO: the other side of a pty closed
            raise EOFError(str(err)) from None
        if not data:
            raise EOFError("end of file")
        return data

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> TtyPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def key_command(key: str, nonce: str) -> str:
    """The shell line that authorizes ``key`` and prints ``<nonce>:done:<status>``."""
    q = quote(key)
    return (
        "umask 077; mkdir -p ~/.ssh && touch ~/.ssh/authorized_keys"
        " && chmod 700 ~/.ssh && chmod 600 ~/.ssh/authorized_keys"
        f" && {{ grep -qxF -- {q} ~/.ssh/authorized_keys"
        f" || printf '%s\\n' {q} >> ~/.ssh/authorized_keys; }}"
        " && { ! command -v restorecon >/dev/null 2>&1 || restorecon -R ~/.ssh; }"
        f"; echo \"{nonce}:done:$?\""
    )


class _Dialogue:
    def __init__(self, port: Port, job: str, user: str, password: str,
                 deadline: float) -> None:
        self.port = port
        self.job = job
        self.user = user
        self.password = password
        self.deadline = deadline
        self.seen = ""  # console text since the last thing sent
        self.lines: deque[str] = deque(maxlen=15)
        self.partial = ""
        self.nonce = "DJ" + secrets.token_hex(6)
        self.received = False  # any byte from the console yet
        self.printed = False  # anything but white space (an echoed Enter)

    # -- text in and out ---------------------------------------------------
    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text

    def tail(self) -> list[str]:
        return [self.scrub(x) for x in [*self.lines, self.partial] if x.strip()]

    def _take(self, data: bytes) -> None:
        text = _ANSI.sub("", data.decode("utf-8", "replace")).replace("\r", "")
        self.received = True
        self.printed = self.printed or bool(text.strip())
        self.seen = (self.seen + text)[-4000:]
        *done, self.partial = (self.partial + text).split("\n")
        for line in done:
            self.lines.append(line)
            if line.strip():
                log.debug("[console %s] %s", self.port.name, self.scrub(line))

    def send(self, text: str, secret: bool = False) -> None:
        self.seen = ""
        if not secret:
            log.debug("[console %s] > %s", self.port.name, self.scrub(text.rstrip("\r")))
        self.port.send(text.encode())

    def error(self, cls: type[ConsoleError], message: str) -> ConsoleError:
        return cls(self.job, self.port.name, message, self.tail())

    def expect(self, patterns: dict[str, re.Pattern[str]], timeout: float,
               poke: bool = False) -> tuple[str, re.Match[str]] | None:
        """The first pattern found in the text since the last send, waiting at
        most ``timeout`` s (pressing Enter after silences when ``poke``)."""
        end = min(self.deadline, time.monotonic() + timeout)
        quiet_since = time.monotonic()
        while True:
            for name, pattern in patterns.items():
                found = pattern.search(self.seen)
                if found:
                    return name, found
            now = time.monotonic()
            if now >= end:
                return None
            try:
                data = self.port.recv(min(0.2, end - now))
            except EOFError as err:
                raise self.error(ConsoleError, f"the console closed ({err})") from None
            if data:
                self._take(data)
                quiet_since = time.monotonic()
            elif poke and time.monotonic() - quiet_since > POKE_AFTER:
                self.send("\r")
                quiet_since = time.monotonic()

    # -- the steps ---------------------------------------------------------
    def probe(self) -> str | None:
        """At what looks like a shell prompt: the user of that shell, or None."""
        self.send(f'echo "{self.nonce}:$(id -un):$((6*7))"\r')
        who = re.compile(re.escape(self.nonce) + r":([^:\s]*):42\b")
        found = self.expect({"who": who}, 10.0)
        return found[1].group(1) if found else None

    def why_silent(self) -> str:
        """The timeout message of a console that never showed a prompt."""
        if not self.received:
            return ("the console sent nothing before the timeout; is a getty on the guest's "
                    "serial port (console=ttyS0), and is the domain's console that port?")
        if not self.printed:
            return ("the console only echoed Enter back before the timeout: the terminal is "
                    "there but no getty reads it; check the guest's serial getty (systemctl "
                    "status serial-getty@ttyS0: a guest short of CPU at boot may have given "
                    "up waiting for /dev/ttyS0 and never started it)")
        return ("no login prompt or shell before the timeout; is a getty on the serial "
                "console (console=ttyS0)?")

    def login(self) -> None:
        self.send(self.user + "\r")
        found = self.expect({"password": _PASSWORD, "prompt": _PROMPT}, 30.0)
        if found is None:
            raise self.error(ConsoleTimeoutError, f"no password prompt after user {self.user!r}")
        if found[0] == "password":
            self.send(self.password + "\r", secret=True)
            outcome = self.expect({"incorrect": _INCORRECT, "login": _LOGIN,
                                   "prompt": _PROMPT}, 60.0)
            if outcome is None:
                raise self.error(ConsoleTimeoutError, "no shell after the password")
            if outcome[0] != "prompt":
                raise self.error(ConsoleLoginError, f"the guest refused user {self.user!r} "
                                 "with this password (console_password)")

    def to_shell(self) -> bool:
        """Reach a shell of ``user``; True when it was logged in already."""
        logged_in_by_us = False
        self.send("\r")
        while True:
            found = self.expect({"login": _LOGIN, "password": _PASSWORD, "prompt": _PROMPT},
                                max(0.0, self.deadline - time.monotonic()), poke=True)
            if found is None:
                raise self.error(ConsoleTimeoutError, self.why_silent())
            kind = found[0]
            if kind == "password":  # a half-finished login: abandon it
                self.send("\r")
                self.expect({"login": _LOGIN}, 10.0)
                continue
            if kind == "login":
                self.login()
                logged_in_by_us = True
            who = self.probe()
            if who == self.user:
                return not logged_in_by_us
            if who is not None:
                log.info("[console %s] logged in as %s, not %s: logging out", self.port.name,
                         who, self.user)
                self.send("exit\r")
                logged_in_by_us = False
            elif logged_in_by_us:
                raise self.error(ConsoleError, "logged in, but the shell does not answer "
                                 "a marker command")
            if time.monotonic() >= self.deadline:
                raise self.error(ConsoleTimeoutError, "no shell of the user before the timeout")

    def authorize(self, key: str) -> None:
        self.send(key_command(key, self.nonce) + "\r")
        done = re.compile(re.escape(self.nonce) + r":done:(\d+)")
        found = self.expect({"done": done}, 60.0)
        if found is None:
            raise self.error(ConsoleTimeoutError, "writing the key gave no answer")
        status = int(found[1].group(1))
        if status != 0:
            raise self.error(ConsoleCommandError, f"writing ~/.ssh/authorized_keys of "
                             f"{self.user} exited {status}")

    def logout(self) -> None:
        self.send("exit\r")
        self.expect({"login": _LOGIN}, 10.0)


def authorize_on_console(port: Port, job: str, user: str, password: str, key: str,
                         timeout: float) -> bool:
    """Log in on ``port`` as ``user``, authorize ``key``, log out.  True when
    the console was already logged in as ``user``.  Raises the
    :class:`~dojobber.contrib.ssh_errors.ConsoleError` kinds."""
    dialogue = _Dialogue(port, job, user, password, time.monotonic() + timeout)
    was_logged_in = dialogue.to_shell()
    dialogue.authorize(key)
    log.info("[console %s] authorized the key for %s", port.name, user)
    dialogue.logout()
    return was_logged_in
