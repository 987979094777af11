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
    Answer GETs of ``path`` (relative to the server root, as for
    ``put_file``) with full headers but close the connection after ``n`` body
    bytes, until the entry is removed; add ``path`` to the ``cut_once`` set
    to have the cut happen only once.
``pace[path] = seconds``
    Send ``path``'s body 64 KiB at a time with that pause between (a slow
    link, so that a test can interrupt a download half-way).
``chunked.add(path)``
    Send ``path``'s body with ``Transfer-Encoding: chunked`` instead of a
    ``Content-Length`` (as servers that stream do).
``content_encoding[path] = "gzip"``
    Label ``path``'s body with that ``Content-Encoding`` (the bytes stay
    the file's: what a web server configured to mark ``.gz`` files this
    way sends).
``corrupt.add(path)``
    Serve wrong bytes (same length) for ``path``.
``redirect[path] = other_path``
    Answer ``path`` with a 302 to ``other_path`` (a "mirror").
``fail[path_prefix] = (status, code, summary)``
    Answer requests starting with ``path_prefix`` with an OBS ``<status>``
    error document and that HTTP status.
``no_head = True``
    Answer every HEAD with 405 Method Not Allowed.
``ignore_conditionals = True``
    Behave like a server that never answers 304.
``log`` / ``requests_for(path, method=None)`` / ``clear_log()``
    :class:`Request` records: method, path, query, headers, status and the
    body bytes sent.

pytest helpers: the ``obs`` fixture (a started :class:`FakeObs`; import it
into your test module), ``capture(name, *deps)`` (a job plus the dict it
fills with ``global_storage["kanku"]``) and ``sha(data)``; running a graph is
:func:`tests.helpers.converge_once`.

XML is written as OBS writes it: ``<binarylist>`` of ``<binary filename
size mtime/>``, ``<resultlist state>`` of ``<result project repository arch
code state [dirty]>`` with ``<status package code>``, ``<status package
code><details/></status>`` for ``_status``, and ``<status code><summary/>
</status>`` for errors.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dojobber import Job

from ._obs_http import Entry, FakeBuild, Handler, Request, Server, sha256_of

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
    "sha",
]

IMAGE_EXTENSIONS = (".qcow2", ".raw", ".vmdk", ".vdi", ".iso", ".xz")


def published_dir(project: str, repository: str) -> str:
    """``repositories/<project with : as :/>/<repository>`` (no slashes around)."""
    return f"repositories/{project.replace(':', ':/')}/{repository}"


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
        self.chunked: set[str] = set()
        self.pace: dict[str, float] = {}
        self.content_encoding: dict[str, str] = {}
        self.redirect: dict[str, str] = {}
        self.fail: dict[str, tuple[int, str, str]] = {}
        self.ignore_conditionals = False
        self.no_head = False
        self.log: list[Request] = []
        self._files: dict[str, Entry] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> FakeObs:
        fake = self

        class Bound(Handler):
            owner = fake

        self._server = Server(("127.0.0.1", 0), Bound)
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
            self._files[path] = Entry(disk, size, f'"{self._version:x}-{size:x}"', mtime)
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
                digest = sha256_of(data)
                text = f"{digest}  {name}\n".encode()
                build.binaries[name + ".sha256"] = (len(text), now)
                if publish:
                    self.put_file(url_path + ".sha256", text)
        with self._lock:
            self.builds.append(build)
        return build

    # -- log --------------------------------------------------------------------
    def requests_for(self, path: str, method: str | None = None) -> list[Request]:
        """The requests for ``path``, each once its handler is done with it
        (a client can finish reading a body before the handler has noted
        how much it sent)."""
        path = "/" + path.lstrip("/")
        with self._lock:
            found = [r for r in self.log
                     if r.path == path and (method is None or r.method == method)]
        for r in found:
            r.done.wait(10)
        return found

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()


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
