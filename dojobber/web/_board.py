"""The board page: requests, their states, attempts and runs; post and
cancel for a user with the token (never with ``--read-only``)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..board import STATES, Board, BoardError, UnknownRequestError, open_board
from ..board import Request as BoardRequest
from ..board import default_path as default_board
from ..records import mask_secrets
from ._data import mask_urls
from ._options import WebOptions
from ._security import auth_of, csrf_problem, wants_json

if TYPE_CHECKING:
    from ._app import Pages

__all__ = ["routes"]

def request_dict(req: BoardRequest) -> dict[str, Any]:
    return {
        "id": req.id,
        "target": mask_urls(req.target),
        "args": mask_urls(mask_secrets(list(req.args))),
        "kwargs": mask_urls(mask_secrets(req.kwargs)),
        "priority": req.priority,
        "state": req.state,
        "posted": req.posted,
        "attempts": req.attempts,
        "max_attempts": req.max_attempts,
        "claimed_by": req.claimed_by,
        "finished": req.finished,
        "outcome": mask_urls(req.outcome),
        "cancel_requested": req.cancel_requested,
        "runs": [{"id": r, "url": f"/runs/{r}"} for r in req.runs],
        "cancellable": req.state in ("waiting", "claimed") and not req.cancel_requested,
    }


def routes(options: WebOptions, pages: Pages) -> list[Route]:
    path = options.board or str(default_board())
    boards: list[Board] = []

    def board() -> Board:
        if not boards:
            boards.append(open_board(path))
        return boards[0]

    def can_change(request: Request) -> bool:
        return not options.read_only and auth_of(request) is not None

    def listing(request: Request, state: str | None, notice: str | None = None,
                error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"board": mask_urls(path), "states": list(STATES), "state": state,
                                "requests": [], "notice": notice, "error": error,
                                "can_change": can_change(request),
                                "read_only": options.read_only}
        try:
            data["requests"] = [request_dict(r) for r in
                                board().requests([state] if state else None, limit=200)]
        except BoardError as err:
            data["error"] = str(err)
        return data

    async def show(request: Request) -> Response:
        state = request.query_params.get("state") or None
        if state is not None and state not in STATES:
            return pages.error(request, 400, f"state: {state!r} is not one of {', '.join(STATES)}")
        notice = notice_text(request.query_params.get("notice"))
        data = await run_in_threadpool(listing, request, state, notice)
        return pages.respond(request, "board.html", data, title="Board")

    async def change(request: Request, action: str) -> Response:
        form = await request.form()
        problem = csrf_problem(request, str(form.get("csrf", "")) or None, options)
        if problem is not None:
            status = 403 if auth_of(request) is not None or options.read_only else 401
            return _outcome(request, pages, status, error=problem)
        try:
            if action == "post":
                code = await run_in_threadpool(_post, board(), form)
            else:
                code = await run_in_threadpool(
                    _cancel, board(), int(request.path_params["request_id"]))
        except (BoardError, ValueError) as err:
            status = 404 if isinstance(err, UnknownRequestError) else 400
            return _outcome(request, pages, status, error=str(err))
        return _outcome(request, pages, 200, notice=code)

    async def post(request: Request) -> Response:
        return await change(request, "post")

    async def cancel(request: Request) -> Response:
        return await change(request, "cancel")

    return [
        Route("/board", show),
        Route("/api/board", show),
        Route("/board/post", post, methods=["POST"]),
        Route("/api/board/post", post, methods=["POST"]),
        Route("/board/{request_id:int}/cancel", cancel, methods=["POST"]),
        Route("/api/board/{request_id:int}/cancel", cancel, methods=["POST"]),
    ]


def _json_field(form: Any, name: str, default: Any) -> Any:
    text = str(form.get(name, "") or "").strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        example = '[1, "two"]' if name == "args" else '{"key": "value"}'
        raise ValueError(f"{name}: not JSON ({err.msg}); give e.g. {example}") from None


#: What a change did, as the board page says it (by code, so that no text
#: from a URL is ever shown as the server's word).
NOTICES = {
    "posted": "posted request {}",
    "duplicate": "an identical request is already waiting: request {}",
    "cancelled": "request {} cancelled",
    "stopping": "request {} will stop after its current job",
    "unchanged": "request {} had already ended; nothing to cancel",
}
_NOTICE = re.compile(r"^([a-z]+)-(\d+)$")


def notice_text(code: str | None) -> str | None:
    match = _NOTICE.match(code or "")
    if match is None or match[1] not in NOTICES:
        return None
    return NOTICES[match[1]].format(match[2])


def _post(board: Board, form: Any) -> str:
    target = str(form.get("target", "")).strip()
    if not target:
        raise ValueError("target: give what to run, FILE.py:Root or package.module:Root")
    args = _json_field(form, "args", [])
    kwargs = _json_field(form, "kwargs", {})
    if not isinstance(args, list):
        raise ValueError("args: give a JSON list")
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs: give a JSON object")
    try:
        priority = int(str(form.get("priority", "0") or "0"))
        attempts = int(str(form.get("max_attempts", "1") or "1"))
    except ValueError:
        raise ValueError("priority and max_attempts: give whole numbers") from None
    posted = board.post(target, args, kwargs, priority=priority, max_attempts=attempts)
    return f"{'duplicate' if posted.duplicate else 'posted'}-{posted.id}"


def _cancel(board: Board, request_id: int) -> str:
    state = board.cancel(request_id)
    if state == "cancelled":
        return f"cancelled-{request_id}"
    if state == "claimed":
        return f"stopping-{request_id}"
    return f"unchanged-{request_id}"


def _outcome(request: Request, pages: Pages, status: int, *, notice: str | None = None,
             error: str | None = None) -> Response:
    if wants_json(request):
        body = ({"notice": notice_text(notice), "result": notice} if error is None
                else {"error": error})
        return JSONResponse(body, status_code=status)
    if error is not None:
        return pages.error(request, status, error)
    from urllib.parse import quote

    return RedirectResponse("/board?notice=" + quote(notice or ""), status_code=303)
