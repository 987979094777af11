"""Shared plumbing of the bundled HTTP jobs: credentials, oscrc, sessions,
error mapping and the Kanku job context in ``global_storage``.

Imports :mod:`requests`; only :mod:`dojobber.contrib.obs` and
:mod:`dojobber.contrib.download` import this module.
"""

from __future__ import annotations

import base64
import bz2
import configparser
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from .errors import (
    CredentialsError,
    HTTPStatusError,
    ObsAuthError,
    ServerError,
    TransportError,
    UnknownResourceError,
)

__all__ = [
    "Credentials",
    "check_status",
    "make_session",
    "oscrc_paths",
    "read_oscrc",
    "redact",
    "request",
    "split_userinfo",
]

log = logging.getLogger("dojobber.contrib")


USER_AGENT = "dojobber-contrib (python-requests)"


class Credentials:
    """A user name and password for HTTP basic auth that never shows the password.

    ``repr()`` and ``str()`` print ``password=***``; the password is only
    handed to the HTTP session.  Instances pickle (for executors in other
    processes) with the password, so do not write them to disk yourself.
    """

    __slots__ = ("_password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password

    @property
    def password(self) -> str:
        """The password (handle with care)."""
        return self._password

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.user, self._password) == (other.user, other._password)

    def __hash__(self) -> int:
        return hash(self.user)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Credentials, (self.user, self._password))


def split_userinfo(url: str) -> tuple[str, Credentials | None]:
    """``(url without user:password@, Credentials of them or None)``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, Credentials(unquote(user), unquote(password))


def redact(url: str) -> str:
    """``url`` without any ``user:password@`` part (safe to log or raise)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def oscrc_paths() -> list[Path]:
    """Where osc keeps its config, in the order osc reads them."""
    found: list[Path] = []
    if os.environ.get("OSC_CONFIG"):
        found.append(Path(os.environ["OSC_CONFIG"]))
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config")
    found.append(Path(config_home) / "osc" / "oscrc")
    found.append(Path(os.path.expanduser("~")) / ".oscrc")
    return found


def _section_key(name: str) -> tuple[str, str, str] | None:
    """``(scheme, host[:port], path)`` of an oscrc section naming an API URL."""
    if name == "general":
        return None
    parts = urlsplit(name if "://" in name else "https://" + name)
    if not parts.netloc:
        return None
    return parts.scheme, parts.netloc.lower(), parts.path.rstrip("/")


def read_oscrc(job: str, api_url: str, path: str | os.PathLike[str] | None = None
               ) -> Credentials | None:
    """Credentials for ``api_url`` from osc's config, or None.

    Reads ``path``, else the first of :func:`oscrc_paths` that exists.  The
    section whose URL is ``api_url`` or a prefix of it wins (the longest);
    it gives ``user`` and ``pass`` (or the older obfuscated ``passx``).
    A section that keeps its password in a keyring
    (``credentials_mgr_class``) gives None: pass credentials directly.
    """
    candidates = [Path(path)] if path is not None else oscrc_paths()
    file = next((p for p in candidates if p.is_file()), None)
    if file is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(file, encoding="utf-8")
    except configparser.ParsingError as err:
        lines = ", ".join(str(n) for n, _ in err.errors)
        raise CredentialsError(job, f"cannot parse {file} (line {lines}); fix the file "
                               "or pass credentials directly") from None
    except (configparser.Error, UnicodeDecodeError, OSError) as err:
        raise CredentialsError(job, f"cannot read {file} ({type(err).__name__}); fix the "
                               "file or pass credentials directly") from None
    want = _section_key(api_url)
    if want is None:
        return None
    best: tuple[int, str] | None = None
    for name in parser.sections():
        key = _section_key(name)
        if key is None or key[:2] != want[:2]:
            continue
        prefix = want[2] == key[2] or want[2].startswith(key[2] + "/")
        if prefix and (best is None or len(key[2]) > best[0]):
            best = (len(key[2]), name)
    if best is None:
        return None
    section = parser[best[1]]
    user = section.get("user")
    password = section.get("pass")
    if password is None and section.get("passx"):
        try:
            password = bz2.decompress(base64.b64decode(section["passx"])).decode()
        except (ValueError, OSError):
            raise CredentialsError(job, f"{file} [{best[1]}]: passx is not valid; "
                                   "replace it with pass=") from None
    if not user or password is None:
        log.debug("oscrc %s [%s] has no user/pass (keyring?); going without auth",
                  file, best[1])
        return None
    return Credentials(user, password)


def make_session(credentials: Credentials | None = None) -> requests.Session:
    """A session that follows redirects and sends basic auth when given."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    if credentials is not None:
        session.auth = (credentials.user, credentials.password)
    return session


def _obs_summary(response: requests.Response) -> str:
    """The ``<summary>`` of an OBS ``<status>`` error body, if there is one."""
    if "xml" not in response.headers.get("Content-Type", "") and not response.content.startswith(
            b"<status"):
        return ""
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return ""
    summary = root.findtext("summary") or ""
    return " ".join(summary.split())[:300]


def check_status(job: str, response: requests.Response, url: str) -> None:
    """Raise the matching named error when ``response`` is an HTTP error."""
    status = response.status_code
    if status < 400:
        return
    summary = _obs_summary(response)
    shown = redact(url)
    if status in (401, 403):
        raise ObsAuthError(job, shown, status, summary)
    if status == 404:
        raise UnknownResourceError(job, shown, status, summary)
    if status >= 500:
        raise ServerError(job, shown, status, summary)
    raise HTTPStatusError(job, shown, status, summary)


def request(job: str, session: requests.Session, method: str, url: str,
            timeout: Any, headers: Mapping[str, str] | None = None,
            stream: bool = False, check: bool = True) -> requests.Response:
    """``session.request`` with redirects followed and errors named.

    Connection problems raise :class:`TransportError`; with ``check`` an
    HTTP error status raises :func:`check_status`'s error.  Nothing raised
    keeps a reference to the request (and so to its Authorization header).
    """
    try:
        response = session.request(method, url, headers=dict(headers or {}), timeout=timeout,
                                   stream=stream, allow_redirects=True)
    except requests.RequestException as err:
        reason = type(err).__name__
        raise TransportError(job, redact(url), reason) from None
    if check and response.status_code >= 400:
        try:
            check_status(job, response, url)
        finally:
            response.close()
    return response
