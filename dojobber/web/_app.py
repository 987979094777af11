"""The Starlette application: routes, templates, the JSON twins.

Every page answers HTML, or JSON with the same data when asked with
``Accept: application/json`` or under ``/api/``.  Database work runs in
worker threads (each with its own connection); the event streams and the
records watcher run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..records import Browsable, RecordsError
from ..records import default_path as default_records
from . import _board, _filters
from ._data import BadParameterError, NotFoundError, job_data, run_data, runs_data
from ._live import Tracker, Watcher, browsable
from ._options import WebOptions
from ._security import COOKIE, Guard, auth_of, safe_next, wants_json
from ._svg import PictureCache, PictureUnavailableError

__all__ = ["create_app"]

HERE = Path(__file__).parent


class Stores:
    """One records connection per worker thread, all closed at shutdown."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[Browsable] = []
        self._lock = threading.Lock()

    def get(self) -> Browsable:
        store: Browsable | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = browsable(self.path)
            with self._lock:
                self._opened.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()


class Pages:
    """Renders a page as HTML or its JSON twin."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _filters.install(self.env)

    def respond(self, request: Request, template: str, data: dict[str, Any],
                status: int = 200, title: str = "") -> Response:
        if wants_json(request):
            return JSONResponse(data, status_code=status)
        context = {
            "data": data,
            "title": title,
            "authed": auth_of(request) is not None,
            "read_only": self.options.read_only,
            "csrf": self.options.derived("csrf") if auth_of(request) == "cookie" else "",
            "path": request.url.path,
            "version": __version__,
        }
        html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.respond(request, "error.html", {"error": message, "status": status},
                            status=status, title=f"Error {status}")


def create_app(options: WebOptions) -> Starlette:
    """The web view for ``options`` (see :class:`WebOptions`)."""
    records = options.records or default_records()
    stores = Stores(records)
    pages = Pages(options)
    pictures = PictureCache()
    watcher = Watcher(records)

    def page(template: str, build: Callable[[Request], dict[str, Any]],
             title: Callable[[dict[str, Any]], str]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await run_in_threadpool(build, request)
            except NotFoundError as err:
                return pages.error(request, 404, str(err))
            except BadParameterError as err:
                return pages.error(request, 400, str(err))
            except RecordsError as err:  # the records cannot be read (now)
                return pages.error(request, 503, str(err))
            return pages.respond(request, template, data, title=title(data))
        return endpoint

    def params(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    runs = page("runs.html", lambda r: runs_data(stores.get(), params(r)), lambda d: "Runs")
    def run_page(request: Request) -> dict[str, Any]:
        data = run_data(stores.get(), request.path_params["run_id"], params(request))
        if data["graph"]["stored"] and not wants_json(request):  # the page will ask for it
            pictures.prefetch(stores.get, data["run"]["id"], options.max_nodes)
        return data

    run = page("run.html", run_page, lambda d: f"Run {d['run']['id']}: {d['run']['root']}")
    job = page(
        "job.html",
        lambda r: job_data(stores.get(), r.path_params["run_id"], r.path_params["name"]),
        lambda d: f"{d['job']['name']} in run {d['run']['id']}",
    )

    async def graph(request: Request) -> Response:
        def draw() -> Any:
            return pictures.picture(stores.get(), request.path_params["run_id"],
                                    params(request), options.max_nodes)
        try:
            picture = await run_in_threadpool(draw)
        except NotFoundError as err:
            return pages.error(request, 404, str(err))
        except BadParameterError as err:
            return pages.error(request, 400, str(err))
        except (PictureUnavailableError, RecordsError) as err:
            return pages.error(request, 503, str(err))
        headers = {
            "x-jobs-drawn": str(picture.drawn),
            "x-jobs-total": str(picture.total),
        }
        return Response(picture.svg, media_type="image/svg+xml", headers=headers)

    async def events(request: Request) -> Response:
        try:
            after = int(request.query_params.get("logs_after", "0") or 0)
        except ValueError:
            return pages.error(request, 400, "logs_after: give a log line number")
        tracker = Tracker(request.path_params["run_id"], request.query_params.get("job"), after)

        async def stream() -> AsyncIterator[dict[str, str]]:
            seen = -1
            while True:
                generation = watcher.generation
                if generation != seen:
                    seen = generation
                    try:
                        event = await run_in_threadpool(tracker.poll, stores.get())
                    except NotFoundError as err:
                        yield {"event": "gone", "data": json.dumps({"error": str(err)})}
                        return
                    if event is not None:
                        yield {"event": "update", "data": json.dumps(event)}
                    if tracker.finished:
                        yield {"event": "end", "data": "{}"}
                        return
                await watcher.wait(seen, 15.0)

        return EventSourceResponse(stream(), ping=15)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=307)

    async def last(request: Request) -> Response:
        try:
            rid = await run_in_threadpool(lambda: stores.get().resolve("last"))
        except Exception:
            return pages.error(request, 404, "no run recorded yet")
        prefix = "/api" if request.url.path.startswith("/api/") else ""
        return RedirectResponse(f"{prefix}/runs/{rid}", status_code=307)

    async def login(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            token = str(form.get("token", ""))
            target = safe_next(str(form.get("next", "")))
        else:
            token = request.query_params.get("token", "")
            target = safe_next(request.query_params.get("next"))
        if not token:
            return pages.respond(request, "login.html", {"next": target, "error": None},
                                 title="Log in")
        import hmac

        if not hmac.compare_digest(token.encode(), options.token.encode()):
            return pages.respond(request, "login.html", {"next": target,
                                 "error": "that is not this server's token"},
                                 status=403, title="Log in")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, options.derived("session"), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/runs", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(watcher.run())
        pictures.warm()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            pictures.close()
            stores.close()

    board_routes = _board.routes(options, pages)
    routes = [
        Route("/", home),
        Route("/runs", runs),
        Route("/api/runs", runs),
        Route("/runs/last", last),
        Route("/api/runs/last", last),
        Route("/runs/{run_id:int}", run),
        Route("/api/runs/{run_id:int}", run),
        Route("/runs/{run_id:int}/graph.svg", graph),
        Route("/runs/{run_id:int}/events", events),
        Route("/runs/{run_id:int}/jobs/{name:path}", job),
        Route("/api/runs/{run_id:int}/jobs/{name:path}", job),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        *board_routes,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.error(request, 404, f"nothing at {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return pages.error(request, 405, f"{request.method} is not allowed here")

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_allowed})
    app.state.options = options
    app.state.watcher = watcher
    app.add_middleware(Guard, options=options)
    return app
