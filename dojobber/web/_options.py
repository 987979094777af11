"""How ``dojobber serve`` is set up: paths, address, token, read-only.

No web framework is imported here, so the command line can check its
options (and refuse a public address without a token) before starting
anything.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field

from ..errors import DojobberError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "ServeError",
    "WebOptions",
    "is_loopback",
    "load_token",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
#: Environment variable holding the access token.
TOKEN_ENV = "DOJOBBER_WEB_TOKEN"
#: Shortest token accepted from the user (a generated one is 32 bytes).
MIN_TOKEN = 16


class ServeError(DojobberError):
    """``dojobber serve`` cannot start with these options."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this
    machine's loopback interface."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def load_token(token_file: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """The token given by the user: the first line of ``token_file``, else
    ``$DOJOBBER_WEB_TOKEN``, else None.  Raises :class:`ServeError` for an
    unreadable file or a token shorter than 16 characters."""
    env = os.environ if environ is None else environ
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except OSError as err:
            raise ServeError(f"--token-file {token_file}: cannot read it ({err.strerror})") from err
        where = f"--token-file {token_file}"
    else:
        token = env.get(TOKEN_ENV, "").strip()
        if not token:
            return None
        where = f"${TOKEN_ENV}"
    if len(token) < MIN_TOKEN:
        raise ServeError(
            f"{where}: the token has {len(token)} characters; give at least {MIN_TOKEN} "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


@dataclass
class WebOptions:
    """What the web view serves and who may do what.

    records: the run records database (None: the default path).
    board: the board database (None: the default path).
    host: the address it listens on; anything but loopback needs ``token``
    given by the user (``token_given``), checked on every request.
    token: the access token; needed to post and cancel (and, off loopback,
    to see anything).  Generated when not given.
    read_only: refuse every change (post, cancel) whatever the token.
    max_nodes: jobs drawn by default in a run's picture (the whole graph is
    a click away).
    """

    records: str | None = None
    board: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    token_given: bool = False
    max_nodes: int = 250

    def check(self) -> None:
        """Raise :class:`ServeError` when these options must not be served."""
        if not is_loopback(self.host) and not self.token_given:
            raise ServeError(
                f"refusing to listen on {self.host} without a token: anyone who reaches "
                f"that address could read the run records; set {TOKEN_ENV}, give "
                "--token-file FILE or --new-token, or listen on 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port {self.port}: give a port from 0 to 65535")
        if self.max_nodes < 1:
            raise ServeError(f"--max-nodes {self.max_nodes}: give 1 or more")

    @property
    def open_to_all(self) -> bool:
        """Whether pages may be read without the token (loopback only)."""
        return is_loopback(self.host)

    def derived(self, purpose: str) -> str:
        """A value derived from the token for ``purpose`` (the session
        cookie, CSRF tokens): never the token itself."""
        mac = hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256)
        return mac.hexdigest()
