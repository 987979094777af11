"""Who may see and change what: the token, the session cookie, CSRF, the
Host header and the headers every response carries.

- The token (given, or generated and printed once) is never stored in the
  browser: logging in with it sets an HttpOnly, SameSite=Strict cookie
  holding a value derived from it.  API clients send
  ``Authorization: Bearer TOKEN`` instead.
- Listening on loopback, pages may be read without the token; elsewhere,
  every request but the login page and the static files needs it.
- A change (post, cancel) is a POST that needs the token and, from a
  browser session, the CSRF field of the page and a same-origin ``Origin``;
  ``--read-only`` refuses every change.
- On loopback, a request naming any other host is refused (a DNS rebinding
  page in the user's browser cannot read the records).
- Every response says: no inline script, nothing from other origins
  (Content-Security-Policy), no sniffing, no framing, no referrer.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ._options import WebOptions, is_loopback

__all__ = ["COOKIE", "Guard", "auth_of", "csrf_problem", "wants_json"]

COOKIE = "dojobber_session"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
#: Paths anyone may fetch: the login page and the package's static files.
_EXEMPT = ("/login", "/static/", "/favicon.ico")
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def wants_json(request: Request) -> bool:
    """The JSON twin is asked for: an ``/api/`` path, or an Accept header
    that prefers JSON to HTML."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def auth_of(request: Request) -> str | None:
    """How the request showed the token: ``"bearer"``, ``"cookie"`` or None."""
    state = request.scope.get("state", {})
    value = state.get("auth")
    return value if isinstance(value, str) else None


def _authenticate(scope: Scope, options: WebOptions) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    kind, _, given = headers.get("authorization", "").partition(" ")
    if kind.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                        options.token.encode()):
        return "bearer"
    cookies = Request(scope).cookies
    session = cookies.get(COOKIE, "")
    if session and hmac.compare_digest(session.encode(), options.derived("session").encode()):
        return "cookie"
    return None


def _host_allowed(scope: Scope, options: WebOptions) -> bool:
    if not is_loopback(options.host):
        return True  # any name may lead here; the token guards it
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        return True  # HTTP/1.0 without Host: not a browser on a rebinding page
    name = urlsplit("//" + host).hostname or ""
    return name in _LOOPBACK_NAMES or is_loopback(name) or name == options.host.strip("[]")


def csrf_problem(request: Request, form_token: str | None, options: WebOptions) -> str | None:
    """Why this POST must not change anything (None: it may)."""
    if options.read_only:
        return "this server is read-only (--read-only): nothing can be posted or cancelled"
    auth = auth_of(request)
    if auth is None:
        return "log in with the token to post or cancel (the URL `dojobber serve` printed)"
    if auth == "bearer":
        return None  # not a browser's ambient credential: no CSRF to fear
    expected = options.derived("csrf")
    if not form_token or not hmac.compare_digest(form_token.encode(), expected.encode()):
        return "the form's CSRF token is missing or wrong; reload the page and try again"
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            return f"request from another site ({origin}) refused"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request ({site}) refused"
    return None


class Guard:
    """ASGI middleware: authenticate, refuse what must be refused, and add
    the security headers to every response."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 options: WebOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        if not _host_allowed(scope, self.options):
            response: Response = PlainTextResponse(
                "this server answers only to its loopback address", status_code=421
            )
            await response(scope, receive, send_with_headers)
            return
        auth = _authenticate(scope, self.options)
        scope.setdefault("state", {})["auth"] = auth
        if auth is None and not self.options.open_to_all and not path.startswith(_EXEMPT):
            request = Request(scope)
            message = "this server needs its token: log in at /login or send a Bearer token"
            if wants_json(request):
                response = JSONResponse({"error": message}, status_code=401)
            else:
                response = Response(
                    status_code=303, headers={"location": "/login?next=" + _next_of(scope)}
                )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _next_of(scope: Scope) -> str:
    from urllib.parse import quote

    path: str = scope.get("path", "/")
    query: bytes = scope.get("query_string", b"")
    target = path + ("?" + query.decode("latin-1") if query else "")
    return quote(target, safe="")


def safe_next(target: str | None) -> str:
    """A same-site path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target
