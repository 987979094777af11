"""``dojobber serve``: the run records and the board in a browser.

Needs the ``web`` extra (Starlette, uvicorn, Jinja2, sse-starlette); every
template, style sheet and script is inside this package, so it works
offline and loads nothing from elsewhere.

- :func:`create_app` builds the ASGI application for :class:`WebOptions`
  (serve it with any ASGI server);
- :func:`serve` checks the options, starts uvicorn and says where to look.

Pages: ``/runs`` (filter, pages, trends), ``/runs/ID`` (picture, jobs, log
lines, live while the run goes on), ``/runs/ID/jobs/NAME`` (phases,
exception, log lines), ``/board`` (requests; post and cancel with the
token).  Each answers JSON too: ``Accept: application/json`` or ``/api/...``.
"""

from __future__ import annotations

from ._app import create_app
from ._options import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, ServeError, WebOptions, load_token
from ._serve import serve

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "ServeError",
    "WebOptions",
    "create_app",
    "load_token",
    "serve",
]
