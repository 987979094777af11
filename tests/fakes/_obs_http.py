"""The HTTP side of :class:`tests.fakes.obs.FakeObs`: request records, the
build model, and the request handler (OBS API + download area)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import quoteattr

if TYPE_CHECKING:
    from .obs import FakeObs

__all__ = ["Entry", "FakeBuild", "Handler", "Request", "Server", "sha256_of"]


@dataclass
class Request:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0
    #: Set when the handler is done with it (body_bytes is final then).
    done: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass
class FakeBuild:
    """One package build in one repository/arch; change its fields freely."""

    project: str
    package: str
    repository: str
    arch: str
    code: str = "succeeded"
    state: str = "published"
    dirty: bool = False
    details: str = ""
    #: file name -> (size, mtime)
    binaries: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Entry:
    disk: Path
    size: int
    etag: str
    mtime: int



class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is normal here; report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _http_date(epoch: int) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


class Handler(BaseHTTPRequestHandler):
    owner: FakeObs
    protocol_version = "HTTP/1.1"
    server_version = "FakeOBS/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        self._rec: Request | None = None
        try:
            super().handle_one_request()
        finally:
            if self._rec is not None:
                self._rec.done.set()

    # -- helpers ----------------------------------------------------------------
    def _record(self) -> Request:
        parts = urlsplit(self.path)
        rec = Request(self.command, unquote(parts.path), parse_qs(parts.query),
                      {k: v for k, v in self.headers.items()})
        with self.owner._lock:
            self.owner.log.append(rec)
        self._rec = rec
        return rec

    def _send(self, rec: Request, status: int, body: bytes = b"",
              content_type: str = "text/xml; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            rec.body_bytes = len(body)

    def _error(self, rec: Request, status: int, code: str, summary: str,
               extra: dict[str, str] | None = None) -> None:
        body = (f'<status code={quoteattr(code)}>\n  <summary>{_esc(summary)}</summary>\n'
                "</status>\n").encode()
        self._send(rec, status, body, extra=extra)

    def do_HEAD(self) -> None:
        if self.owner.no_head:
            rec = self._record()
            self._send(rec, 405, b"", "text/html", {"Allow": "GET"})
            return
        self.do_GET()

    def do_GET(self) -> None:
        rec = self._record()
        path = rec.path
        for prefix, (status, code, summary) in list(self.owner.fail.items()):
            if path.lstrip("/").startswith(prefix.lstrip("/")):
                self._error(rec, status, code, summary)
                return
        target = self.owner.redirect.get(path.lstrip("/"))
        if target is not None:
            self._send(rec, 302, b"", "text/html",
                       {"Location": self.owner.url(target)})
            return
        if path.startswith("/public/"):
            self._api(rec, path[len("/public/"):].split("/"))
            return
        self._file(rec, path.lstrip("/"))

    # -- API ----------------------------------------------------------------------
    def _authorized(self) -> bool:
        need = self.owner.require_auth
        if need is None:
            return True
        want = "Basic " + base64.b64encode(f"{need[0]}:{need[1]}".encode()).decode()
        return self.headers.get("Authorization") == want

    def _api(self, rec: Request, parts: list[str]) -> None:
        if not self._authorized():
            self._error(rec, 401, "authentication_required", "Authentication required",
                        {"WWW-Authenticate": 'Basic realm="Use your developer account"'})
            return
        if len(parts) < 2 or parts[0] != "build":
            self._error(rec, 404, "not_found", "unknown API path")
            return
        project = parts[1]
        with self.owner._lock:
            builds = [b for b in self.owner.builds if b.project == project]
        if not builds:
            self._error(rec, 404, "unknown_project", f"Project not found: {project}")
            return
        if parts[2:] == ["_result"]:
            self._result(rec, project, builds)
            return
        if len(parts) not in (5, 6):
            self._error(rec, 404, "not_found", "unknown API path")
            return
        repository, arch, package = parts[2], parts[3], parts[4]
        found = [b for b in builds if (b.repository, b.arch, b.package) ==
                 (repository, arch, package)]
        if not found:
            if not any((b.repository, b.arch) == (repository, arch) for b in builds):
                self._error(rec, 404, "unknown_repository",
                            f"repository '{project}/{repository}/{arch}' does not exist")
            else:
                self._error(rec, 404, "unknown_package", f"package '{package}' does not exist")
            return
        build = found[-1]
        if len(parts) == 6 and parts[5] == "_status":
            details = f"<details>{_esc(build.details)}</details>" if build.details else \
                "<details></details>"
            body = (f"<status package={quoteattr(build.package)} code={quoteattr(build.code)}>"
                    f"\n  {details}\n</status>\n")
            self._send(rec, 200, body.encode())
            return
        if len(parts) == 5:
            lines = ["<binarylist>"]
            for name, (size, mtime) in sorted(build.binaries.items()):
                lines.append(f"  <binary filename={quoteattr(name)} size=\"{size}\" "
                             f"mtime=\"{mtime}\"/>")
            lines.append("</binarylist>\n")
            self._send(rec, 200, "\n".join(lines).encode())
            return
        self._error(rec, 404, "not_found", "unknown API path")

    def _result(self, rec: Request, project: str, builds: list[FakeBuild]) -> None:
        want = {k: v[0] for k, v in rec.query.items()}
        groups: dict[tuple[str, str], list[FakeBuild]] = {}
        for b in builds:
            if want.get("repository", b.repository) != b.repository:
                continue
            if want.get("arch", b.arch) != b.arch:
                continue
            groups.setdefault((b.repository, b.arch), []).append(b)
        state = hashlib.md5(repr(sorted((k, [(b.code, b.state, b.dirty) for b in v])
                                        for k, v in groups.items())).encode()).hexdigest()
        lines = [f'<resultlist state="{state}">']
        for (repository, arch), members in sorted(groups.items()):
            repo_state = "published"
            dirty = False
            for b in members:
                if b.state != "published":
                    repo_state = b.state
                dirty = dirty or b.dirty
            attrs = (f"project={quoteattr(project)} repository={quoteattr(repository)} "
                     f"arch={quoteattr(arch)} code={quoteattr(repo_state)} "
                     f"state={quoteattr(repo_state)}")
            if dirty:
                attrs += ' dirty="true"'
            lines.append(f"  <result {attrs}>")
            for b in members:
                if want.get("package", b.package) != b.package:
                    continue
                if b.details:
                    lines.append(f"    <status package={quoteattr(b.package)} "
                                 f"code={quoteattr(b.code)}>\n      <details>"
                                 f"{_esc(b.details)}</details>\n    </status>")
                else:
                    lines.append(f"    <status package={quoteattr(b.package)} "
                                 f"code={quoteattr(b.code)}/>")
            lines.append("  </result>")
        lines.append("</resultlist>\n")
        self._send(rec, 200, "\n".join(lines).encode())

    # -- download area -------------------------------------------------------------
    def _file(self, rec: Request, path: str) -> None:
        owner = self.owner
        with owner._lock:
            entry = owner._files.get(path)
        if entry is None:
            self._send(rec, 404, b"<html><body>404 Not Found</body></html>\n", "text/html")
            return
        modified = _http_date(entry.mtime)
        validators = {"ETag": entry.etag, "Last-Modified": modified,
                      "Accept-Ranges": "bytes"}
        if not owner.ignore_conditionals and self._not_modified(entry):
            rec.status = 304
            self.send_response(304)
            for key, value in validators.items():
                self.send_header(key, value)
            self.end_headers()
            return
        start, end = 0, entry.size - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted and self._if_range_ok(entry, modified):
            span = _parse_range(wanted, entry.size)
            if span is None:
                rec.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{entry.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span
            status = 206
        length = end - start + 1
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        chunked = path in owner.chunked
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if path in owner.content_encoding:
            self.send_header("Content-Encoding", owner.content_encoding[path])
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
        for key, value in validators.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length
        with owner._lock:
            cut = owner.cut_after.get(path)
            if cut is not None and path in owner.cut_once:
                del owner.cut_after[path]
                owner.cut_once.discard(path)
            corrupt = path in owner.corrupt
            pace = owner.pace.get(path)
        if cut is not None:
            limit = min(length, cut)
        if chunked:
            sent = self._chunked_body(entry.disk, start, limit, corrupt)
        elif pace:
            sent = self._paced_body(entry.disk, start, limit, pace)
        else:
            sent = self._body(entry.disk, start, limit, corrupt)
        rec.body_bytes = sent
        if sent < length:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)

    def _paced_body(self, disk: Path, start: int, count: int, pause: float) -> int:
        """Send 64 KiB at a time with ``pause`` seconds between (a slow link)."""
        sent = 0
        with open(disk, "rb") as f:
            f.seek(start)
            while sent < count:
                piece = f.read(min(1 << 16, count - sent))
                if not piece:
                    break
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                time.sleep(pause)
        return sent

    def _body(self, disk: Path, start: int, count: int, corrupt: bool) -> int:
        if not corrupt:
            with open(disk, "rb") as f:
                return self.connection.sendfile(f, start, count) if count else 0
        sent = 0
        for piece in _pieces(disk, start, count, corrupt):
            self.wfile.write(piece)
            sent += len(piece)
        return sent

    def _chunked_body(self, disk: Path, start: int, count: int, corrupt: bool) -> int:
        """Send ``count`` bytes in chunked framing (64 KiB chunks, then the end
        marker when all of the file was sent)."""
        sent = 0
        for piece in _pieces(disk, start, count, corrupt):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        if start + sent == disk.stat().st_size:
            self.wfile.write(b"0\r\n\r\n")
        return sent

    def _not_modified(self, entry: Entry) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:
            return match.strip() == "*" or entry.etag in [m.strip() for m in match.split(",")]
        since = self.headers.get("If-Modified-Since")
        if since is not None:
            try:
                when = email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
            return entry.mtime <= when
        return False

    def _if_range_ok(self, entry: Entry, modified: str) -> bool:
        cond = self.headers.get("If-Range")
        return cond is None or cond.strip() in (entry.etag, modified)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one ``bytes=a-b`` span of ``header`` (None = unsatisfiable)."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pieces(disk: Path, start: int, count: int, corrupt: bool) -> Iterator[bytes]:
    """``count`` bytes of ``disk`` from ``start`` in pieces of up to 64 KiB;
    with ``corrupt`` the first byte of each piece is flipped."""
    with open(disk, "rb") as f:
        f.seek(start)
        left = count
        while left:
            piece = f.read(min(1 << 16, left))
            if not piece:
                return
            yield bytes(b ^ 0xFF for b in piece[:1]) + piece[1:] if corrupt else piece
            left -= len(piece)
