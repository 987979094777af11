"""Starting the web view under uvicorn."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import TextIO

from ._options import WebOptions, is_loopback

__all__ = ["serve"]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _check_records(options: WebOptions) -> None:
    """Refuse at once records that cannot be read (a broken file, a backend
    the web view cannot browse), rather than on every page."""
    from ..records import RecordsError
    from ..records import default_path as default_records
    from ._live import browsable
    from ._options import ServeError

    try:
        browsable(options.records or default_records()).close()
    except RecordsError as err:
        raise ServeError(str(err)) from None


def serve(
    options: WebOptions,
    *,
    out: TextIO | None = None,
    log_level: str = "warning",
    show_token: bool | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Check ``options`` (:class:`ServeError` if they must not be served),
    listen, print the URL to open, and serve until interrupted (Ctrl-C or
    SIGTERM: open pages are told, then it returns).

    The URL printed logs the browser in (it carries the token once); it is
    printed only for a token made here (``show_token``, by default when the
    user gave none), never for one read from a file or the environment.
    """
    import uvicorn

    from ._app import create_app

    options.check()
    _check_records(options)
    out = sys.stdout if out is None else out
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host.strip("[]"), options.port))
        sock.listen(128)  # connections wait from now on, so the URL printed works at once
    except OSError as err:
        sock.close()
        from ._options import ServeError

        raise ServeError(
            f"cannot listen on {options.host}:{options.port} ({err.strerror}); "
            "give another --port (0 picks a free one) or --host"
        ) from None
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    base = f"http://{_url_host(shown)}:{port}"
    url = f"{base}/login?token={options.token}&next=/runs"
    if show_token is None:
        show_token = not options.token_given
    if not show_token:
        out.write(f"dojobber serve: {base}/runs (log in with your token to post and cancel)\n")
    else:
        out.write(f"dojobber serve: open {url}\n")
        out.write("  (that link logs you in once; the token is not shown again)\n")
    if not is_loopback(options.host):
        out.write(f"  listening on {options.host}: every request needs the token; "
                  "put TLS in front of it (a reverse proxy) before crossing a network\n")
    if options.read_only:
        out.write("  read-only: posting and cancelling are off\n")
    out.flush()
    if on_listening is not None:
        on_listening(base)
    config = uvicorn.Config(
        create_app(options), log_level=log_level, access_log=False,
        timeout_graceful_shutdown=2, lifespan="on",
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then passes Ctrl-C on
        pass
    finally:
        sock.close()
