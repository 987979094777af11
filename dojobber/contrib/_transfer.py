"""The byte-moving half of :class:`~dojobber.contrib.download.Download`.

A :class:`Transfer` streams one URL into ``.NAME.part`` beside the target,
hashing as it goes, resumes a kept part with ``Range`` + ``If-Range``, and
renames into place only when size and sha256 match.  :class:`SideCar` keeps
``.NAME.dojobber.json``: what was verified, against the file's size, mtime
and inode, so a later Check need not rehash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from .._context import report_progress
from ._hashring import HashRing, body_readinto, read_some, write_all
from ._http import check_status, redact, request
from .errors import (
    ChecksumMismatchError,
    DownloadError,
    DownloadInterruptedError,
    SizeMismatchError,
)

__all__ = ["SideCar", "Transfer", "file_sha256", "read_json", "write_json"]

_PROGRESS_STEP = 8 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def file_sha256(path: Path, hasher: Any = None, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (fed into ``hasher`` when given); reports progress."""
    digest = hasher if hasher is not None else hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    done = 0
    total = path.stat().st_size
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
            done += n
            if done % _PROGRESS_STEP < n:
                report_progress(done, total, "B")
    return str(digest.hexdigest())


def _hash_then_flush(hasher: Any, flush: _Writeback) -> Callable[[memoryview], None]:
    """Hash a written chunk, then start its writeback (on the ring's thread:
    asking Linux to write back costs ~0.3 s per GiB on a disk)."""
    def digest(data: memoryview) -> None:
        hasher.update(data)
        flush.wrote(len(data))
    return digest


def _unpacker(hasher: Any, decomp: lzma.LZMADecompressor, out_hash: Any,
              write: Callable[[memoryview], int | None],
              flush: _Writeback | None) -> Callable[[memoryview], None]:
    """Hash xz input, decompress it, hash and write the output (on the ring's thread)."""
    def unpack(data: memoryview) -> None:
        hasher.update(data)
        out = decomp.decompress(data)
        out_hash.update(out)
        write_all(write, memoryview(out))
        if flush is not None:
            flush.wrote(len(out))
    return unpack


class _Writeback:
    """Starts the disk writes of a growing file early, so the final fsync is short.

    Every ``step`` bytes, ``posix_fadvise(DONTNEED)`` on what was written
    since asks Linux to start writing it back (without waiting) and to drop
    it from the page cache once clean; a GiB image then neither waits for
    the disk all at once at the end nor crowds out the page cache.
    """

    def __init__(self, fd: int, start: int, step: int = 32 << 20) -> None:
        self.fd, self.done, self.pending, self.step = fd, start, 0, step
        self.enabled = hasattr(os, "posix_fadvise")

    def wrote(self, n: int) -> None:
        self.pending += n
        if self.pending >= self.step and self.enabled:
            try:
                os.posix_fadvise(self.fd, self.done, self.pending, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.enabled = False
            self.done += self.pending
            self.pending = 0


class SideCar:
    """``.NAME.dojobber.json`` beside a downloaded file."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}.dojobber.json")

    def valid_for(self, url: str) -> dict[str, Any] | None:
        """The record, if it is about ``url`` and the file is unchanged since."""
        meta = read_json(self.path)
        if meta is None or meta.get("url") != redact(url):
            return None
        try:
            st = self.target.stat()
        except OSError:
            return None
        if [meta.get("size"), meta.get("mtime_ns"), meta.get("inode")] != [
                st.st_size, st.st_mtime_ns, st.st_ino]:
            return None
        return meta

    def write(self, meta: dict[str, Any]) -> None:
        """Record ``meta`` with the target's current size, mtime and inode."""
        st = self.target.stat()
        write_json(self.path, {**meta, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                               "inode": st.st_ino})


def part_path(target: Path) -> Path:
    """Where a download of ``target`` is kept while it is incomplete."""
    return target.with_name(f".{target.name}.part")


def size_text(size: int) -> str:
    """``8388608`` -> ``8.0 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Transfer:
    """One download of ``url`` to ``target``; :meth:`run` does it."""

    def __init__(self, *, job: str, session: requests.Session, url: str, target: Path,
                 sha256: str | None, size: int | None, decompress: bool, timeout: Any,
                 chunk_size: int, fsync: bool) -> None:
        self.job, self.session, self.url, self.target = job, session, url, target
        self.sha256, self.size, self.decompress = sha256, size, decompress
        self.timeout, self.chunk_size, self.fsync = timeout, chunk_size, fsync
        self.part = part_path(target)
        self.part_meta = target.with_name(f".{target.name}.part.json")

    # -- the partial file ---------------------------------------------------
    def discard(self) -> None:
        """Delete the partial file and its record."""
        for path in (self.part, self.part_meta):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _resumable(self) -> tuple[int, str] | None:
        """``(offset, If-Range value)`` when a kept part can be continued."""
        if self.decompress or not self.part.is_file():
            return None
        meta = read_json(self.part_meta)
        if meta is None or meta.get("url") != redact(self.url):
            return None
        etag = meta.get("etag") or ""
        validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
        offset = self.part.stat().st_size
        if not validator or offset == 0:
            return None
        return offset, str(validator)

    # -- the transfer ----------------------------------------------------------
    def run(self) -> None:
        """Download, verify and rename into place; raise a named error if not.

        Holds an exclusive lock on ``.NAME.lock`` meanwhile, so two runs
        (processes) downloading the same file do not mix their bytes.
        """
        lock_path = self.target.with_name(f".{self.target.name}.lock")
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise DownloadError(self.job, f"another download of {self.target} is running "
                                    f"(it holds {lock_path}); rerun when it is done") from None
            try:
                self._run()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _run(self, _again: bool = True) -> None:
        hasher = hashlib.sha256()
        headers = {"Accept-Encoding": "identity"}
        resume = self._resumable()
        offset = 0
        if resume is None:
            self.discard()
        else:
            offset = resume[0]
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = resume[1]
        response = request(self.job, self.session, "GET", self.url, self.timeout, headers,
                           stream=True, check=False)
        with response:
            status = response.status_code
            total: int | None = None
            if status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != offset:
                    response.close()
                    self.discard()
                    if _again:
                        return self._run(_again=False)
                    raise DownloadError(self.job, f"{redact(self.url)}: the server sent a "
                                        "wrong byte range; rerun")
                total = int(match.group(3)) if match.group(3) != "*" else None
                file_sha256(self.part, hasher)
            elif status == 416 and offset and _again:
                response.close()
                self.discard()
                return self._run(_again=False)
            else:
                check_status(self.job, response, self.url)
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None and length.isdigit() else None
            etag = response.headers.get("ETag")
            modified = response.headers.get("Last-Modified")
            if not self.decompress and (etag or modified):
                write_json(self.part_meta, {"url": redact(self.url), "etag": etag,
                                       "last_modified": modified})
            done, out_hash = self._stream(response, offset, total, hasher)
        self._finish(done, total, hasher.hexdigest(), out_hash, etag, modified)
        return None

    def _stream(self, response: requests.Response, offset: int, total: int | None,
                hasher: Any) -> tuple[int, str | None]:
        """Copy the body into the part file; returns (bytes received, output sha).

        This thread receives into a :class:`HashRing` buffer and writes it;
        the ring's worker then hashes it and starts its writeback while this
        thread receives the next.  With ``decompress`` the worker also
        decompresses, hashes and writes the output.
        """
        decomp = lzma.LZMADecompressor() if self.decompress else None
        out_hash = hashlib.sha256() if decomp is not None else None
        done = offset
        shown_total = total if total is not None else self.size
        next_report = done + _PROGRESS_STEP
        report_progress(done, shown_total, "B")
        readinto = body_readinto(response)
        with open(self.part, "ab" if offset else "wb", buffering=0) as f:
            flush = _Writeback(f.fileno(), f.tell()) if self.fsync else None
            write = f.write

            digest: Callable[[memoryview], object] = hasher.update
            if decomp is not None and out_hash is not None:
                digest = _unpacker(hasher, decomp, out_hash, write, flush)
            elif flush is not None:
                digest = _hash_then_flush(hasher, flush)
            ring = HashRing(digest, self.chunk_size)
            broke: BaseException | None = None
            try:
                try:
                    while True:
                        buffer = ring.take()
                        n, broke = read_some(readinto, buffer)
                        if not n:
                            break
                        if decomp is None:
                            write_all(write, buffer[:n])
                        ring.give(buffer, n)
                        done += n
                        if done >= next_report:
                            report_progress(done, shown_total, "B")
                            next_report = done + _PROGRESS_STEP
                        if broke is not None:
                            break
                finally:
                    ring.join()  # everything received is written (and a resume is exact)
                ring.close()
                if decomp is not None and not decomp.eof and broke is None:
                    raise DownloadError(self.job, f"{redact(self.url)}: the xz stream is "
                                        "truncated; rerun to download again")
                if self.fsync and broke is None:
                    os.fsync(f.fileno())
            except lzma.LZMAError:
                f.close()
                self.discard()
                raise DownloadError(self.job, f"{redact(self.url)}: not valid xz data; set "
                                    "decompress=False or fix the URL") from None
            except OSError as err:
                f.close()
                self.discard()
                raise DownloadError(self.job, f"cannot write {self.part}: {err.strerror or err}; "
                                    "free some space or fix dest_dir, then rerun") from None
            except DownloadError:
                f.close()
                self.discard()
                raise
        if broke is not None:
            kept = "the partial file is kept, rerun to resume"
            if self.decompress or not self.part_meta.exists():
                self.discard()
                kept = "rerun to download again"
            raise DownloadInterruptedError(
                self.job, f"{redact(self.url)}: the transfer broke off after {done} of "
                f"{shown_total if shown_total is not None else '?'} bytes "
                f"({type(broke).__name__}); {kept}")
        report_progress(done, shown_total, "B")
        return done, out_hash.hexdigest() if out_hash is not None else None

    def _finish(self, done: int, total: int | None, digest: str, out_hash: str | None,
                etag: str | None, modified: str | None) -> None:
        """Verify what arrived; rename into place and record it, or discard it."""
        if total is not None and done < total and not self.decompress:
            raise DownloadInterruptedError(
                self.job, f"{redact(self.url)}: the transfer ended after {done} of {total} "
                "bytes; the partial file is kept, rerun to resume")
        expected = self.size if self.size is not None else total
        if expected is not None and done != expected:
            self.discard()
            raise SizeMismatchError(self.job, redact(self.url), expected, done)
        if self.sha256 and digest != self.sha256:
            self.discard()
            raise ChecksumMismatchError(self.job, redact(self.url), self.sha256, digest)
        os.replace(self.part, self.target)
        SideCar(self.target).write({
            "url": redact(self.url),
            "etag": etag,
            "last_modified": modified,
            "source_size": done,
            "source_sha256": digest,
            "sha256": out_hash if out_hash is not None else digest,
            "decompressed": out_hash is not None,
        })
        with contextlib.suppress(FileNotFoundError):
            self.part_meta.unlink()
