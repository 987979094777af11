"""A single-run lock: one run of a graph at a time.

``configure(lock=path)`` (CLI: ``--lock PATH``) takes an exclusive
:func:`fcntl.flock` on ``path`` for the whole ``checknrun()``.  A second run
waits up to ``lock_timeout`` seconds (0: not at all) and then fails with
:class:`LockHeldError`, whose message names the holder (pid, host, start
time, root) as written into the file by the holder.  The operating system
drops the lock when the holder's process ends, however it ends (SIGKILL
included), so a lock is never left behind; the stale text in the file is
simply overwritten by the next holder.

A lock dies with its holder: a child process does not keep it.  The
descriptor is close-on-exec (a program started by a job does not get it),
and a child forked while the lock is held (a process-pool worker) closes its
copy at once, so that a holder killed outright frees the lock even when its
pool workers live on.  The lock file is created readable by its owner only
(0600).

POSIX only (``fcntl``); on a network file system, flock may not be shared
between hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import weakref
from typing import Any

from ._paths import expand_path
from .errors import RunError

__all__ = ["LockHeldError", "RunLock"]


class LockHeldError(RunError):
    """Another run holds the lock (and did not let go within the timeout)."""

    def __init__(self, path: str, holder: dict[str, Any], waited: float) -> None:
        self.path = path
        self.holder = holder
        if holder:
            started = holder.get("started")
            when = (
                time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
                if isinstance(started, (int, float))
                else "an unknown time"
            )
            who = (
                f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"running {holder.get('root', '?')} since {when}"
            )
        else:
            who = "a process that has not written its name yet"
        wait = f" after waiting {waited:g}s" if waited else ""
        super().__init__(
            f"another run holds the lock {path}{wait}: {who}; wait for it to finish, "
            "or give a lock timeout (lock_timeout= / --lock-timeout SECONDS) to wait for it"
        )


#: The locks this process holds (a forked child closes their descriptors).
_HELD: weakref.WeakSet[RunLock] = weakref.WeakSet()


def _drop_in_child() -> None:
    """After a fork, in the child: close the copies of held lock descriptors
    (the flock belongs to the open file, which the parent still has)."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


class RunLock:
    """An exclusive lock on ``path``, taken with :meth:`acquire` (or ``with``).

    ``timeout``: seconds to wait for a holder to finish (0: fail at once,
    None: wait for ever).  ``root``: what to name in the holder's note.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        timeout: float | None = 0.0,
        root: str = "",
        poll: float = 0.1,
    ) -> None:
        self.path = expand_path(path)
        self.timeout = timeout
        self.root = root
        self.poll = poll
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any]:
        """What the current (or last) holder wrote: pid, host, started, root."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`LockHeldError` (OSError when the
        lock file cannot be opened)."""
        if self._fd is not None:
            return self
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        start = time.monotonic()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if self.timeout is not None and waited >= self.timeout:
                        raise LockHeldError(self.path, self.holder(), round(waited, 1)) from None
                    pause = self.poll
                    if self.timeout is not None:
                        pause = min(pause, self.timeout - waited)
                    time.sleep(max(pause, 0.0))
            note = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.time(),
                "root": self.root,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD.add(self)
        return self

    def release(self) -> None:
        """Let go of the lock (the file stays, emptied)."""
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({self.path!r}, held={self.held})"
