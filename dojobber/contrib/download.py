"""Download a file idempotently: resumable, checksum-verified, atomic.

:class:`Download` is a ready job: ``Download.variant("Get image",
dest_dir="/var/cache/images", source=FindImage)`` downloads what the
:class:`~dojobber.contrib.obs.ObsImage` job ``FindImage`` found (and depends
on it), or give ``url=`` directly.  See ``docs/obs.rst``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from .._describe import message
from ..job import REQUIRED, Job
from ._http import Credentials, check_status, make_session, redact, request
from ._runscope import job_result, publish
from ._transfer import SideCar, Transfer, file_sha256, part_path, size_text
from .errors import DownloadError, NotDownloadedError, NoUrlError, RemoteChangedError
from .obs import parse_sha256

__all__ = ["Download"]

log = logging.getLogger("dojobber.contrib.download")

_HEX64 = re.compile(r"[0-9a-f]{64}")


class Download(Job):
    """A file downloaded to ``dest_dir``, complete, verified and up to date.

    Options (set with :meth:`~dojobber.Job.variant`):

    ``url``
        What to download; or leave it None and name a ``source`` job.
    ``source``
        A job class whose recorded result has ``url`` (and ``sha256``,
        ``size``), such as an :class:`~dojobber.contrib.obs.ObsImage`
        variant; it is added to ``DEPS``.
    ``dest_dir`` (required)
        The directory to download into (created when missing).
    ``filename``
        The final file name; default: the URL's last part (without ``.xz``
        when decompressing).
    ``sha256``
        The expected sha256 (hex); default: the source job's, else the
        server's ``<url>.sha256`` when it publishes one, else size only.
    ``decompress``
        Decompress an ``.xz`` URL while downloading (False).
    ``check_remote``
        Check asks the server whether it has a newer version (True).
    ``credentials``, ``timeout``, ``chunk_size``, ``fsync``
        Basic auth for the download server, seconds (or (connect, read)),
        size of each receive buffer (256 KiB), flush to disk before the final
        rename (True).

    Check passes when the file is at its final path with the expected size
    and sha256 (cached against size+mtime: reruns do not rehash) and the
    server answers a conditional request with 304.  Run downloads to a
    temporary file beside it, resumes a broken transfer with ``Range`` /
    ``If-Range``, hashes while streaming and renames into place only when
    verified.
    """

    url: str | None = None
    source: type[Job] | None = None
    dest_dir: str = REQUIRED
    filename: str | None = None
    sha256: str | None = None
    decompress: bool = False
    check_remote: bool = True
    credentials: Credentials | None = None
    timeout: float | tuple[float, float] = (10.0, 60.0)
    #: Longest one attempt may take: two hours (a big image on a slow link;
    #: a stalled connection fails sooner, by ``timeout``).  A later try
    #: resumes what was downloaded.
    TIMEOUT = 7200.0
    chunk_size: int = 256 << 10
    fsync: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        source = vars(cls).get("source")
        if isinstance(source, type) and source not in list(cls.DEPS):
            cls.DEPS = (*cls.DEPS, source)

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The job's options; ``source`` (a class) is one of them too."""
        found = super().options()
        found["source"] = cls.source
        return found

    # ------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    def _wanted(self, session: requests.Session) -> dict[str, Any]:
        """url, sha256 and size (None when unknown) of what to download;
        the options are checked first."""
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise DownloadError(self._name(), f"the chunk_size option {self.chunk_size!r} is "
                                "not a positive number of bytes; leave it at 256 KiB")
        cache = self.storage if self.storage is not None else {}
        if self.credentials is None and self.source is not None:
            # A user:password@ the source job took out of its URL.
            given = job_result(self.global_storage, self.source.__name__) or {}
            auth = given.get("credentials")
            if isinstance(auth, Credentials) and (not self.url or self.url == given.get("url")):
                session.auth = (auth.user, auth.password)
        if "wanted" in cache:
            return dict(cache["wanted"])
        name = self._name()
        wanted: dict[str, Any] = {"url": self.url, "sha256": None, "size": None}
        if self.source is not None:
            found = job_result(self.global_storage, self.source.__name__)
            if found is None or not found.get("url"):
                raise NoUrlError(name, f"source job {self.source.__name__} has recorded no "
                                 "url in this run; make sure it is in DEPS and passed")
            if not self.url or self.url == found["url"]:
                wanted = {"url": found["url"], "sha256": found.get("sha256"),
                          "size": found.get("size")}

        elif not self.url:
            raise NoUrlError(name, "set the url option, or source= a lookup job")
        if self.sha256:
            digest = str(self.sha256).strip().lower()
            if not _HEX64.fullmatch(digest):
                raise DownloadError(name, f"the sha256 option {self.sha256!r} is not 64 hex "
                                    "digits; give the image's sha256 or leave it None")
            wanted["sha256"] = digest
        elif wanted["sha256"] is None and wanted["size"] is None:
            wanted["sha256"] = self._published_sha256(session, wanted["url"])
        cache["wanted"] = wanted
        return dict(wanted)

    def _published_sha256(self, session: requests.Session, url: str) -> str | None:
        """The digest in ``<url>.sha256`` if the server publishes one."""
        parts = urlsplit(url)
        sums = urlunsplit(parts._replace(path=parts.path + ".sha256"))
        response = request(self._name(), session, "GET", sums, self.timeout, check=False)
        with response:
            if response.status_code in (404, 410):
                return None
            check_status(self._name(), response, sums)
            return parse_sha256(response.text, unquote(parts.path.rsplit("/", 1)[-1]))

    def _decompressing(self, url: str) -> bool:
        return self.decompress and urlsplit(url).path.endswith(".xz")

    def _target(self, url: str) -> Path:
        name = self.filename or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not self.filename and self._decompressing(url):
            name = name[: -len(".xz")]
        if not name or name in (".", "..") or "/" in name:
            raise NoUrlError(self._name(), f"cannot make a file name from {redact(url)}; "
                             "set the filename option")
        return Path(os.path.expanduser(self.dest_dir)) / name

    # ------------------------------------------------------------------
    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Pass when the file is in place, verified and current."""
        if self._check_phase == "recheck" and self._run_exception is not None:
            raise self._run_exception
        name = self._name()
        with make_session(self.credentials) as session:
            wanted = self._wanted(session)
            url = wanted["url"]
            target = self._target(url)
            sidecar = SideCar(target)
            if not target.is_file():
                raise NotDownloadedError(name, f"{target} is not downloaded yet")
            meta = sidecar.valid_for(url)
            if meta is None:
                meta = self._adopt(target, wanted)
            if wanted["sha256"] and meta["source_sha256"] != wanted["sha256"]:
                raise NotDownloadedError(name, f"{target} holds sha256 {meta['source_sha256']}, "
                                         f"expected {wanted['sha256']}")
            if wanted["size"] is not None and meta["source_size"] != wanted["size"]:
                raise NotDownloadedError(name, f"{target} came from {meta['source_size']} "
                                         f"bytes, expected {wanted['size']}")
            # Right after Run fetched it, the server's answer is fresh already.
            just_fetched = self._check_phase == "recheck" and self._run_exception is None
            if self.check_remote and not just_fetched:
                meta = self._remote_unchanged(session, url, meta, sidecar)
        result = {
            "path": str(target),
            "url": redact(url),
            "size": meta["size"],
            "sha256": meta["sha256"],
            "source_sha256": meta["source_sha256"],
            "etag": meta.get("etag"),
            "last_modified": meta.get("last_modified"),
            "decompressed": meta.get("decompressed", False),
        }
        publish(self.global_storage, name, result, {
            "vm_image_file": str(target),
            "vm_image_file_size": meta["size"],
            "vm_image_file_sha256": meta["sha256"],
        })
        return result

    def _adopt(self, target: Path, wanted: dict[str, Any]) -> dict[str, Any]:
        """A file without a valid record: accept it if its hash proves it."""
        name = self._name()
        if self._decompressing(wanted["url"]) or not wanted["sha256"]:
            raise NotDownloadedError(name, f"{target} has no record of a verified download")
        digest = file_sha256(target)
        if digest != wanted["sha256"]:
            raise NotDownloadedError(name, f"{target} has sha256 {digest}, expected "
                                     f"{wanted['sha256']}")
        size = target.stat().st_size
        meta = {"url": redact(wanted["url"]), "source_sha256": digest, "source_size": size,
                "sha256": digest, "decompressed": False, "etag": None, "last_modified": None}
        SideCar(target).write(meta)
        return {**meta, "size": size}

    def _remote_unchanged(self, session: requests.Session, url: str, meta: dict[str, Any],
                          sidecar: SideCar) -> dict[str, Any]:
        name = self._name()
        headers = {"Accept-Encoding": "identity"}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        response = request(name, session, "HEAD", url, self.timeout, headers, check=False)
        if response.status_code in (405, 501):
            # No HEAD here: a conditional GET, closed before its body is read.
            response.close()
            response = request(name, session, "GET", url, self.timeout, headers, stream=True,
                               check=False)
        if response.status_code >= 400:
            with response:
                check_status(name, response, url)
        with response:
            if response.status_code == 304:
                return meta
            etag = response.headers.get("ETag")
            modified = response.headers.get("Last-Modified")
            length = response.headers.get("Content-Length")
        same = ((etag is not None and etag == meta.get("etag"))
                or (etag is None and modified is not None
                    and modified == meta.get("last_modified")))
        if same:
            return meta
        if len(headers) == 1 and length is not None and length.isdigit() \
                and int(length) == meta["source_size"]:
            # Adopted by hash; remember the validators for next time.
            meta = {**meta, "etag": etag, "last_modified": modified}
            sidecar.write(meta)
            return meta
        raise RemoteChangedError(name, f"the server has a newer version of {redact(url)} "
                                 f"(ETag {etag}, Last-Modified {modified}); Run downloads it")

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: what Run would download, how big (when the source
        job said, or a kept partial file shows) and where; no request is
        made (the URL and size are what the Check worked out)."""
        why = message(self._check_exception) if self._check_exception else ""
        wanted = (self.storage or {}).get("wanted")
        if wanted is None:  # the Check failed before it knew what to get
            return f"download into {self.dest_dir}, but Run would fail as the Check did: {why}"
        url = wanted["url"]
        try:
            target = self._target(url)
        except NoUrlError as err:
            return f"download {redact(url)}, but Run would fail: {message(err)}"
        size = wanted.get("size")
        text = f"download {redact(url)} ({size_text(size) if size else 'size unknown'})"
        if self._decompressing(url):
            text += ", decompressing it,"
        text += f" to {target}"
        part = part_path(target)
        if not self._decompressing(url) and part.is_file():
            text += f", resuming after the {size_text(part.stat().st_size)} kept"
        return f"{text}; now: {why}" if why else text

    def Run(self, *args: Any, **kwargs: Any) -> None:
        """Download (or resume), verify, and move into place."""
        with make_session(self.credentials) as session:
            wanted = self._wanted(session)
            url = wanted["url"]
            target = self._target(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            transfer = Transfer(
                job=self._name(), session=session, url=url, target=target,
                sha256=wanted["sha256"], size=wanted["size"],
                decompress=self._decompressing(url), timeout=self.timeout,
                chunk_size=self.chunk_size, fsync=self.fsync)
            transfer.run()
        log.info("%s: downloaded %s to %s", self._name(), redact(url), target)

