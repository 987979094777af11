"""A fake Open Build Service (API + download area) on a real loopback HTTP server.

Start one per test (or per module) and point the OBS/download jobs at it::

    from tests.fakes.obs import FakeObs

    with FakeObs() as obs:                      # threaded server on 127.0.0.1
        build = obs.add_build("devel:kanku:images", "leap", files={
            "leap.x86_64-1.0-Build1.1.qcow2": b"image bytes",
        })                                      # publishes the files + .sha256
        FindImage = ObsImage.variant("Find", project=build.project,
                                     package=build.package,
                                     api_url=obs.api_url, download_url=obs.download_url)

API (all thread-safe; change state at any time between runs):

``FakeObs(tmpdir=None, require_auth=None)``
    ``start()`` / ``stop()`` or use it as a context manager.  Files are kept
    under ``tmpdir`` (a temporary directory by default) and streamed from
    disk, so large files cost no memory.  ``require_auth=("user", "pass")``
    makes the API answer 401 without those basic-auth credentials.
``api_url`` / ``download_url`` / ``base_url``
    ``http://127.0.0.1:PORT/public``, ``.../repositories/`` and the root.
``add_build(project, package, files, repository="images", arch="x86_64",
code="succeeded", state="published", dirty=False, sha256=True,
publish=True, details="")`` -> :class:`FakeBuild`
    A package build: ``files`` maps file name -> bytes (or a ``Path``).
    With ``sha256`` each file ending in an image extension also gets a
    ``<file>.sha256`` ("<hex>  <name>"); with ``publish`` every file is put
    into the download area at ``<project with : as :/>/<repository>/``.
    Change ``build.code`` / ``build.state`` / ``build.dirty`` /
    ``build.details`` later to move the build along.
``put_file(path, data)`` -> ``url``
    Put ``data`` (bytes, or a ``Path`` to hard-link or copy) at ``path`` under
    the server root (e.g. ``"repositories/x/images/a.qcow2"``); each put
    gives a new ``ETag`` and a later ``Last-Modified``.  ``file_path(path)``
    is where it lives on disk; ``etag(path)`` its current ETag.
``cut_after[path] = n``
    Answer GET of ``path`` with full headers but close after ``n`` body bytes
    (the next GET is served whole unless the entry stays; ``cut_once`` is a
    set of paths whose cut is removed after it happened once).
``corrupt.add(path)``
    Serve wrong bytes (same length) for ``path``.
``redirect[path] = other_path``
    Answer ``path`` with a 302 to ``other_path`` (a "mirror").
``fail[path_prefix] = (status, code, summary)``
    Answer requests starting with ``path_prefix`` with an OBS ``<status>``
    error document and that HTTP status.
``ignore_conditionals = True``
    Behave like a server that never answers 304.
``log`` / ``requests_for(path, method=None)`` / ``clear_log()``
    :class:`Request` records: method, path, query, headers, status and the
    body bytes sent.

pytest helpers: the ``obs`` fixture (a started :class:`FakeObs`; import it
into your test module), ``run(root, tries=1, **configure)`` (one
``checknrun`` without retry delay, returns the DoJobber), ``capture(name,
*deps)`` (a job plus the dict it fills with ``global_storage["kanku"]``)
and ``sha(data)``.

XML is written as OBS writes it: ``<binarylist>`` of ``<binary filename
size mtime/>``, ``<resultlist state>`` of ``<result project repository arch
code state [dirty]>`` with ``<status package code>``, ``<status package
code><details/></status>`` for ``_status``, and ``<status code><summary/>
</status>`` for errors.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

import pytest

from dojobber import DoJobber, Job

__all__ = [
    "IMAGE",
    "IMAGE_EXTENSIONS",
    "PACKAGE",
    "PROJECT",
    "FakeBuild",
    "FakeObs",
    "Request",
    "capture",
    "obs",
    "published_dir",
    "run",
    "sha",
]

IMAGE_EXTENSIONS = (".qcow2", ".raw", ".vmdk", ".vdi", ".iso", ".xz")


def published_dir(project: str, repository: str) -> str:
    """``repositories/<project with : as :/>/<repository>`` (no slashes around)."""
    return f"repositories/{project.replace(':', ':/')}/{repository}"


@dataclass
class Request:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


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
class _Entry:
    disk: Path
    size: int
    etag: str
    mtime: int


class FakeObs:
    """The fake OBS server; see the module docstring."""

    def __init__(self, tmpdir: str | os.PathLike[str] | None = None,
                 require_auth: tuple[str, str] | None = None) -> None:
        self._own_tmp = tmpdir is None
        self.root = Path(tmpdir if tmpdir is not None else tempfile.mkdtemp(prefix="fakeobs-"))
        self.require_auth = require_auth
        self.builds: list[FakeBuild] = []
        self.cut_after: dict[str, int] = {}
        self.cut_once: set[str] = set()
        self.corrupt: set[str] = set()
        self.redirect: dict[str, str] = {}
        self.fail: dict[str, tuple[int, str, str]] = {}
        self.ignore_conditionals = False
        self.log: list[Request] = []
        self._files: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> FakeObs:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._own_tmp:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeObs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the FakeObs first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/public"

    @property
    def download_url(self) -> str:
        return self.base_url + "/repositories/"

    def url(self, path: str) -> str:
        """The full URL of a server path (quoted as a client would)."""
        return f"{self.base_url}/{quote(path.lstrip('/'), safe=':/')}"

    # -- files ------------------------------------------------------------------
    def put_file(self, path: str, data: bytes | os.PathLike[str]) -> str:
        """Serve ``data`` at ``path``; a new version each time (new ETag, later mtime)."""
        path = path.lstrip("/")
        with self._lock:
            self._version += 1
            disk = self.root / "files" / f"{self._version}.bin"
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.unlink(missing_ok=True)
            if isinstance(data, (bytes, bytearray, memoryview)):
                disk.write_bytes(bytes(data))
            else:
                try:
                    os.link(data, disk)
                except OSError:
                    shutil.copyfile(data, disk)
            old = self._files.get(path)
            mtime = int(time.time())
            if old is not None and mtime <= old.mtime:
                mtime = old.mtime + 1
            size = disk.stat().st_size
            self._files[path] = _Entry(disk, size, f'"{self._version:x}-{size:x}"', mtime)
        return self.url(path)

    def file_path(self, path: str) -> Path:
        return self._files[path.lstrip("/")].disk

    def etag(self, path: str) -> str:
        return self._files[path.lstrip("/")].etag

    def add_build(self, project: str, package: str, files: dict[str, bytes | Path],
                  repository: str = "images", arch: str = "x86_64", code: str = "succeeded",
                  state: str = "published", dirty: bool = False, sha256: bool = True,
                  publish: bool = True, details: str = "") -> FakeBuild:
        build = FakeBuild(project, package, repository, arch, code, state, dirty, details)
        where = published_dir(project, repository)
        now = int(time.time())
        for name, data in files.items():
            url_path = f"{where}/{name}"
            if publish:
                self.put_file(url_path, data)
            size = len(data) if isinstance(data, bytes) else Path(data).stat().st_size
            build.binaries[name] = (size, now)
            if sha256 and name.endswith(IMAGE_EXTENSIONS):
                digest = _sha256(data)
                text = f"{digest}  {name}\n".encode()
                build.binaries[name + ".sha256"] = (len(text), now)
                if publish:
                    self.put_file(url_path + ".sha256", text)
        with self._lock:
            self.builds.append(build)
        return build

    # -- log --------------------------------------------------------------------
    def requests_for(self, path: str, method: str | None = None) -> list[Request]:
        path = "/" + path.lstrip("/")
        with self._lock:
            return [r for r in self.log
                    if r.path == path and (method is None or r.method == method)]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is normal here; report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _http_date(epoch: int) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeObs
    protocol_version = "HTTP/1.1"
    server_version = "FakeOBS/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- helpers ----------------------------------------------------------------
    def _record(self) -> Request:
        parts = urlsplit(self.path)
        rec = Request(self.command, unquote(parts.path), parse_qs(parts.query),
                      {k: v for k, v in self.headers.items()})
        with self.owner._lock:
            self.owner.log.append(rec)
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
        self.send_header("Content-Length", str(length))
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
        if cut is not None:
            limit = min(length, cut)
        sent = self._body(entry.disk, start, limit, corrupt)
        rec.body_bytes = sent
        if sent < length:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)

    def _body(self, disk: Path, start: int, count: int, corrupt: bool) -> int:
        with open(disk, "rb") as f:
            if not corrupt:
                return self.connection.sendfile(f, start, count) if count else 0
            f.seek(start)
            sent = 0
            while sent < count:
                chunk = f.read(min(1 << 16, count - sent))
                if not chunk:
                    break
                self.wfile.write(bytes(b ^ 0xFF for b in chunk[:1]) + chunk[1:])
                sent += len(chunk)
            return sent

    def _not_modified(self, entry: _Entry) -> bool:
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

    def _if_range_ok(self, entry: _Entry, modified: str) -> bool:
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


# -- pytest helpers ------------------------------------------------------------------

PROJECT = "devel:kanku:images"
PACKAGE = "leap"
IMAGE = "openSUSE-Leap-15.6.x86_64-1.2.3-Build4.5.qcow2"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def obs() -> Iterator[FakeObs]:
    """A started :class:`FakeObs`, stopped after the test."""
    with FakeObs() as fake:
        yield fake


def run(root: type[Job], tries: int = 1, **kwargs: Any) -> DoJobber:
    """One checknrun of ``root`` with no retry delay."""
    dj = DoJobber()
    dj.configure(root, default_tries=tries, default_retry_delay=0, **kwargs)
    dj.checknrun()
    return dj


def capture(name: str, *deps: type[Job]) -> tuple[type[Job], dict[str, Any]]:
    """A job that depends on ``deps`` and copies ``global_storage["kanku"]``."""
    seen: dict[str, Any] = {}

    class Capture(Job):
        DEPS = list(deps)

        def Check(self) -> None:
            assert self.global_storage is not None
            seen.clear()
            seen.update(self.global_storage.get("kanku", {}))

    Capture.__name__ = Capture.__qualname__ = name
    return Capture, seen
