"""Find the image a package built in an Open Build Service project.

:class:`ObsImage` is a ready job: make one per image with
``ObsImage.variant("Find Leap image", project=..., package=...)``.  Its Check
passes when the repository is published and clean, the package build
succeeded and exactly one image of the preferred kind was built; it returns
(and stores in ``global_storage["kanku"]``) the direct download URL, file
name, size, mtime and the published sha256.  See ``docs/obs.rst``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import requests

from .._describe import message
from ..job import REQUIRED, Job
from ._http import Credentials, make_session, read_oscrc, redact, request, split_userinfo
from ._runscope import job_result, publish
from .errors import (
    AmbiguousImageError,
    BuildFailedError,
    BuildNotReadyError,
    HTTPStatusError,
    ImageNotFoundError,
    RepositoryNotFoundError,
    RepositoryNotReadyError,
)

__all__ = [
    "DEFAULT_EXTENSIONS",
    "Credentials",
    "ObsImage",
    "download_url_for",
    "job_result",
    "parse_sha256",
    "pick_image",
]

log = logging.getLogger("dojobber.contrib.obs")

#: Image kinds in the order they are preferred.
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    "qcow2", "raw", "vmdk", "vdi", "iso",
    "qcow2.xz", "raw.xz", "vmdk.xz", "vdi.xz", "iso.xz",
)

_READY = "succeeded"
_IN_PROGRESS = frozenset({"scheduled", "building", "finished", "signing", "dispatching",
                          "blocked", "locked", "unknown"})
_SHA256 = re.compile(r"^([0-9a-fA-F]{64})(?:\s+\*?(\S.*))?$")


def download_url_for(download_url: str, project: str, repository: str, filename: str) -> str:
    """The published location of ``filename``: ``:`` in the project become ``:/``."""
    base = download_url if download_url.endswith("/") else download_url + "/"
    return f"{base}{quote(project.replace(':', ':/'), safe=':/')}/{quote(repository)}/" \
           f"{quote(filename)}"


def parse_sha256(text: str, filename: str | None = None) -> str | None:
    """The hex digest in a ``.sha256`` file (``<hex>  <name>``), lower case.

    With ``filename``, a line naming another file is skipped.
    """
    for line in text.splitlines():
        match = _SHA256.match(line.strip())
        if match is None:
            continue
        named = match.group(2)
        if filename is None or named is None or named.strip().lstrip("./") == filename:
            return match.group(1).lower()
    return None


def pick_image(job: str, files: Sequence[str], extensions: Sequence[str],
               pattern: str | None = None) -> str:
    """The one file of the most preferred extension (optionally matching a glob)."""
    names = [f for f in files if pattern is None or fnmatch.fnmatchcase(f, pattern)]
    for ext in extensions:
        found = sorted(f for f in names if f.endswith("." + ext.lstrip(".")))
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousImageError(job, found)
    raise ImageNotFoundError(job, [e.lstrip(".") for e in extensions], sorted(files))


class ObsImage(Job):
    """The image a package built in OBS: published, succeeded, unambiguous.

    Options (set with :meth:`~dojobber.Job.variant`):

    ``project``, ``package`` (required; a multibuild flavour is
    ``"package:flavour"``), ``repository`` (``"images"``), ``arch``
    (``"x86_64"``), ``api_url``, ``download_url``, ``preferred_extension``
    (a string or a sequence, best first; default :data:`DEFAULT_EXTENSIONS`),
    ``filename`` (a glob to choose among several images), ``credentials``
    (a :class:`Credentials`; default: read from ``oscrc``), ``oscrc`` (a path,
    None for osc's usual places, False to never read one) and ``timeout``
    (seconds, or (connect, read)).

    Check returns a dict ``url, filename, size, mtime, sha256, project,
    package, repository, arch`` and records it in ``global_storage`` (see
    docs/obs.rst).  Run does nothing: OBS builds on its own, so a failing
    check says what is missing and a later rerun converges.
    """

    project: str = REQUIRED
    package: str = REQUIRED
    repository: str = "images"
    arch: str = "x86_64"
    api_url: str = "https://api.opensuse.org/public"
    download_url: str = "https://download.opensuse.org/repositories/"
    preferred_extension: str | Sequence[str] = DEFAULT_EXTENSIONS
    filename: str | None = None
    credentials: Credentials | None = None
    oscrc: str | bool | None = None
    timeout: float | tuple[float, float] = (10.0, 60.0)
    #: Longest one attempt may take (a handful of requests, each bounded
    #: by ``timeout``): past it the try fails with JobTimeoutError.
    TIMEOUT = 600.0

    # ------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    def _credentials(self) -> Credentials | None:
        """``credentials``, else a ``user:password@`` in ``api_url``, else
        the oscrc entry of the API."""
        if self.credentials is not None:
            return self.credentials
        api_url, in_url = split_userinfo(self.api_url)
        if in_url is not None:
            return in_url
        if self.oscrc is False:
            return None
        path = None if self.oscrc in (None, True) else str(self.oscrc)
        return read_oscrc(self._name(), api_url, path)

    def _api(self, *parts: str) -> str:
        # (user:password@ in api_url goes to the session as credentials,
        # never into a URL that could be shown)
        base = split_userinfo(self.api_url)[0].rstrip("/")
        return base + "/" + "/".join(quote(p, safe=":") for p in parts)

    def _get_xml(self, session: requests.Session, url: str,
                 params: dict[str, str] | None = None) -> ET.Element:
        if params:
            url = url + "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in params.items())
        response = request(self._name(), session, "GET", url, self.timeout)
        try:
            return ET.fromstring(response.content)
        except ET.ParseError:
            raise HTTPStatusError(self._name(), redact(url), response.status_code,
                                  "the answer is not XML") from None

    def _extensions(self) -> list[str]:
        ext = self.preferred_extension
        return [ext] if isinstance(ext, str) else list(ext)

    # ------------------------------------------------------------------
    def Check(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Look the image up; raise a named error saying what is not ready."""
        if self._check_phase == "recheck" and self._check_exception is not None:
            # Run changed nothing: report the first check's finding without
            # asking the server the same questions again a moment later.
            raise self._check_exception
        name = self._name()
        with make_session(self._credentials()) as session:
            self._check_repository(session)
            self._check_package(session)
            listing = self._get_xml(session, self._api(
                "build", self.project, self.repository, self.arch, self.package))
            binaries = {b.get("filename", ""): b for b in listing.iter("binary")}
            chosen = pick_image(name, list(binaries), self._extensions(), self.filename)
            info = binaries[chosen]
            download_url, download_auth = split_userinfo(self.download_url)
            url = download_url_for(download_url, self.project, self.repository, chosen)
            sha256 = None
            if chosen + ".sha256" in binaries:
                if download_auth is not None:
                    session.auth = (download_auth.user, download_auth.password)
                response = request(name, session, "GET", url + ".sha256", self.timeout)
                sha256 = parse_sha256(response.text, chosen)
        result: dict[str, Any] = {
            "url": url,
            "filename": chosen,
            "size": int(info.get("size", "0")),
            "mtime": int(info.get("mtime", "0")),
            "sha256": sha256,
            "project": self.project,
            "package": self.package,
            "repository": self.repository,
            "arch": self.arch,
        }
        if download_auth is not None:  # for Download (its repr shows no password)
            result["credentials"] = download_auth
        publish(self.global_storage, name, result, {
            "vm_image_url": url,
            "vm_image_name": chosen,
            "vm_image_size": result["size"],
            "vm_image_sha256": sha256,
            "obs_project": self.project,
            "obs_package": self.package,
            "obs_repository": self.repository,
            "obs_arch": self.arch,
        })
        log.info("%s: %s (%s bytes)", name, url, result["size"])
        return result

    def _check_repository(self, session: requests.Session) -> None:
        # Asked for the package only, so that when the repository is not
        # there the error can list the ones the project really has.
        root = self._get_xml(session, self._api("build", self.project, "_result"),
                             {"package": self.package})
        seen: list[str] = []
        for result in root.iter("result"):
            repo, arch = result.get("repository", ""), result.get("arch", "")
            seen.append(f"{repo}/{arch}")
            if (repo, arch) != (self.repository, self.arch):
                continue
            state = result.get("state") or result.get("code") or "unknown"
            dirty = result.get("dirty") == "true"
            if state != "published" or dirty:
                raise RepositoryNotReadyError(self._name(), self.project, repo, arch,
                                              state, dirty)
            return
        raise RepositoryNotFoundError(self._name(), self.project, self.repository,
                                      self.arch, seen)

    def _check_package(self, session: requests.Session) -> None:
        root = self._get_xml(session, self._api(
            "build", self.project, self.repository, self.arch, self.package, "_status"))
        code = root.get("code", "unknown")
        if code == _READY:
            return
        details = " ".join((root.findtext("details") or "").split())
        if code in _IN_PROGRESS:
            raise BuildNotReadyError(self._name(), self.package, code, details)
        raise BuildFailedError(self._name(), self.package, code, details)

    def Run(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: OBS builds and publishes on its own; rerun later."""

    def Plan(self, *args: Any, **kwargs: Any) -> str:
        """Check mode: Run changes nothing here; OBS has to build and
        publish (what the Check found is said, no request is made)."""
        found = message(self._check_exception) if self._check_exception else "not ready"
        return (f"nothing to run: wait for OBS to build and publish {self.package} in "
                f"{self.project} ({self.repository}/{self.arch}); now: {found}")
