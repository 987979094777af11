"""What each page shows, as plain JSON-able data.

Every page of the web view is a template over one of these dicts, and the
same dict is the page's JSON twin (``Accept: application/json`` or the
``/api/`` path), so the two never disagree.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from ..records import OUTCOMES, Browsable, JobRecord, LogLine, RecordsError, RunRecord
from ..render import STYLES

__all__ = [
    "OUTCOMES",
    "BadParameterError",
    "NotFoundError",
    "job_data",
    "job_url",
    "mask_urls",
    "parse_time",
    "run_data",
    "runs_data",
]

#: Job statuses, in the order the pages list them.
STATUSES = ("failed", "would_run", "not_checked", "blocked", "changed", "ok", "pending")
#: Statuses counted per run (pending: the rest).
_COUNTED = ("ok", "changed", "failed", "blocked", "would_run", "not_checked")
PER_PAGE = 50
JOBS_PER_PAGE = 500
RUN_LOG_LINES = 100
JOB_LOG_LINES = 5000
#: Runs in a trend (the run itself and the ones before it).
TREND_LENGTH = 12


class BadParameterError(ValueError):
    """A query parameter that makes no sense (HTTP 400)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(name, message)  # (so that it pickles to itself)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class NotFoundError(LookupError):
    """No such run or job (HTTP 404)."""


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def mask_urls(value: Any) -> Any:
    """``value`` with the ``user:password@`` part of any URL in it masked."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)
    if isinstance(value, list):
        return [mask_urls(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_urls(v) for k, v in value.items()}
    return value


def job_url(run_id: int, name: str) -> str:
    return f"/runs/{run_id}/jobs/{quote(name, safe='')}"


def styles() -> dict[str, dict[str, str]]:
    """Colours per status, as the pictures draw them."""
    return {
        s.value: {"fill": st.fill, "border": st.border, "font": st.font, "legend": st.legend}
        for s, st in STYLES.items()
    }


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(name: str, text: str | None, now: float | None = None) -> float | None:
    """``24h`` / ``7d`` (that long ago) or an ISO date or date-time (local
    time) as seconds since the epoch; None for empty."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNIT[match[2]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise BadParameterError(
            name, f"{text!r} is not a time; give e.g. 24h, 7d, 2026-11-29 or 2026-11-29T14:30"
        ) from None


def _int(params: Mapping[str, str], name: str, default: int, lowest: int = 1) -> int:
    text = params.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadParameterError(name, f"{text!r} is not a whole number") from None
    if value < lowest:
        raise BadParameterError(name, f"{value} is below {lowest}")
    return value


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise BadParameterError(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def log_dicts(run_id: int, lines: list[LogLine]) -> list[dict[str, Any]]:
    return [
        {"seq": line.seq, "job": line.job, "job_url": job_url(run_id, line.job),
         "phase": line.phase, "attempt": line.attempt, "created": line.created,
         "level": line.level, "logger": line.logger, "message": line.message}
        for line in lines
    ]


def run_dict(run: RunRecord, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """A run for a page: what the records hold (arguments as masked when
    recorded), its URL and its job counts."""
    if counts is None:
        counts = {"ok": run.ok, "changed": run.changed, "failed": run.failed,
                  "blocked": run.blocked}
    done = sum(counts.values())
    return {
        "id": run.id,
        "url": f"/runs/{run.id}",
        "root": run.root,
        "target": mask_urls(run.target),
        "script": run.script,
        "argv": mask_urls(run.argv),
        "args": mask_urls(run.args),
        "host": run.host,
        "user": run.user,
        "pid": run.pid,
        "no_act": run.no_act,
        "workers": run.workers,
        "started": run.started,
        "finished": run.finished,
        "duration": run.duration,
        "outcome": run.outcome,
        "jobs": run.jobs,
        "counts": {**counts, "pending": max(0, run.jobs - done)},
    }


def _trend_verdict(points: list[dict[str, Any]]) -> str:
    """``converged``, ``converging`` (fewer failed/blocked jobs than the run
    before), ``not converging`` (as many or more), ``first run``, or the
    outcome of a run still going or cut short (those are left out of the
    comparison: they say nothing about the graph)."""
    if points and points[-1]["outcome"] not in ("converged", "not_converged"):
        return str(points[-1]["outcome"]).replace("_", " ")
    done = [p for p in points if p["outcome"] in ("converged", "not_converged")]
    if done and done[-1]["outcome"] == "converged":
        return "converged"
    if len(done) < 2:
        return "first run"
    return "converging" if done[-1]["bad"] < done[-2]["bad"] else "not converging"


def runs_data(store: Browsable, params: Mapping[str, str]) -> dict[str, Any]:
    """The runs list: one page of runs under the filters, with trends."""
    where: dict[str, Any] = {
        "root": params.get("root") or None,
        "outcome": _choice(params, "outcome", OUTCOMES),
        "since": parse_time("since", params.get("since")),
        "until": parse_time("until", params.get("until")),
    }
    per_page = min(_int(params, "per_page", PER_PAGE), 500)
    page = _int(params, "page", 1)
    runs, total = store.find_runs(**where, limit=per_page, offset=(page - 1) * per_page)
    filters = {k: params.get(k, "") for k in ("root", "outcome", "since", "until")}
    kept = {k: v for k, v in filters.items() if v}
    if per_page != PER_PAGE:
        kept["per_page"] = str(per_page)

    def page_url(number: int) -> str:
        return "/runs?" + urlencode({**kept, "page": number})

    pages = max(1, -(-total // per_page))
    rows = []
    for run in runs:
        row = run_dict(run)
        points = [{"id": i, "outcome": o, "bad": b}
                  for i, o, b in store.trend(run.id, TREND_LENGTH)]
        row["trend"] = {"points": points, "verdict": _trend_verdict(points)}
        rows.append(row)
    return {
        "runs": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "filters": filters,
        "roots": store.roots(),
        "outcomes": list(OUTCOMES),
        "prev": page_url(page - 1) if page > 1 else None,
        "next": page_url(page + 1) if page < pages else None,
    }


def _run(store: Browsable, run_id: str) -> RunRecord:
    try:
        return store.run(run_id)
    except RecordsError as err:
        raise NotFoundError(err.reason) from None


def live_counts(store: Browsable, run: RunRecord) -> dict[str, int]:
    """Job counts of a run; a running one's from its job rows so far, and
    a dry run's too (the run row does not count would_run / not_checked)."""
    if run.outcome != "running" and not run.no_act:
        return {"ok": run.ok, "changed": run.changed, "failed": run.failed,
                "blocked": run.blocked, "would_run": 0, "not_checked": 0}
    counts = dict.fromkeys(_COUNTED, 0)
    for status, _tries, _duration in store.job_states(run.id).values():
        if status in counts:
            counts[status] += 1
    return counts


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    return text.strip().splitlines()[0] if text.strip() else text


def run_data(store: Browsable, run_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    """A run: summary, its jobs (a page of them, by status), recent log
    lines, and where its picture and live updates are."""
    run = _run(store, run_id)
    status = _choice(params, "status", STATUSES)
    page = _int(params, "page", 1)
    records = {job.name: job for job in store.jobs(run.id)}
    graph = store.graph_data(run.id)
    names: list[str] = list(graph["names"]) if graph else list(records)
    jobs: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        job = records.get(name)
        jobs.append({
            "index": index,
            "name": name,
            "url": job_url(run.id, name),
            "status": job.status if job else "pending",
            "tries": job.tries if job else 0,
            "started": job.started if job else None,
            "duration": job.duration if job else None,
            "error": _first_line(job.exception) if job else None,
            "plan": _first_line(job.plan) if job else None,
        })
    counts = live_counts(store, run)
    shown = [j for j in jobs if status is None or j["status"] == status]
    start = (page - 1) * JOBS_PER_PAGE
    logs = log_dicts(run.id, store.log_lines(run.id, last=RUN_LOG_LINES))
    base = f"/runs/{run.id}"
    return {
        "run": run_dict(run, counts),
        "jobs": shown[start:start + JOBS_PER_PAGE],
        "jobs_shown": len(shown),
        "jobs_total": len(jobs),
        "jobs_page": page,
        "jobs_pages": max(1, -(-len(shown) // JOBS_PER_PAGE)),
        "status": status,
        "statuses": list(STATUSES),
        "graph": {
            "stored": graph is not None,
            "svg": f"{base}/graph.svg",
            "full": f"{base}/graph.svg?all=1",
            "jobs": len(names),
        },
        "logs": logs,
        "live": f"{base}/events" if run.outcome == "running" else None,
        "styles": styles(),
    }


def _phase(phase: list[Any], start: float, span: float) -> dict[str, Any]:
    name, attempt, started, duration, ok, error = (list(phase) + [None] * 6)[:6]
    offset = (started - start) if started is not None else 0.0
    return {
        "phase": name,
        "attempt": attempt,
        "started": started,
        "duration": duration,
        "ok": bool(ok),
        "error": error,
        "offset": offset,
        # Where the bar sits on the timeline, in per cent of the job's span.
        "left": round(100 * offset / span, 3) if span > 0 else 0.0,
        "width": round(max(0.3, 100 * (duration or 0.0) / span), 3) if span > 0 else 100.0,
    }


def job_dict(run_id: int, job: JobRecord) -> dict[str, Any]:
    phases = job.phases or []
    starts = [p[2] for p in phases if len(p) > 3 and p[2] is not None]
    start = min(starts) if starts else (job.started or 0.0)
    end = max((p[2] + (p[3] or 0.0) for p in phases if len(p) > 3 and p[2] is not None),
              default=start)
    span = end - start
    return {
        "run_id": run_id,
        "name": job.name,
        "url": job_url(run_id, job.name),
        "status": job.status,
        "tries": job.tries,
        "started": job.started,
        "duration": job.duration,
        "result": job.result,
        "exception": job.exception,
        "traceback": job.traceback,
        "plan": job.plan,
        "phases": [_phase(p, start, span) for p in phases],
        "span": span,
    }


def job_data(store: Browsable, run_id: str, name: str) -> dict[str, Any]:
    """One job of a run: status, tries, phases on a timeline, exception and
    traceback, its dependencies and dependants, and its log lines."""
    run = _run(store, run_id)
    graph = store.graph_data(run.id)
    try:
        job = job_dict(run.id, store.job(run.id, name))
    except RecordsError:
        if graph is None or name not in graph["names"]:
            raise NotFoundError(f"run {run.id} has no job {name!r}") from None
        job = {"run_id": run.id, "name": name, "url": job_url(run.id, name),
               "status": "pending", "tries": 0, "started": None, "duration": None,
               "result": None, "exception": None, "traceback": None, "plan": None,
               "phases": [], "span": 0.0}
    deps: list[str] = []
    dependants: list[str] = []
    if graph is not None and name in graph["names"]:
        names = graph["names"]
        i = names.index(name)
        deps = [names[d] for d in graph["deps"][i]]
        dependants = [names[k] for k, ds in enumerate(graph["deps"]) if i in ds]
    logs = log_dicts(run.id, store.log_lines(run.id, job=name, last=JOB_LOG_LINES))
    return {
        "run": run_dict(run, live_counts(store, run)),
        "job": job,
        "deps": [{"name": d, "url": job_url(run.id, d)} for d in deps],
        "dependants": [{"name": d, "url": job_url(run.id, d)} for d in dependants],
        "logs": logs,
        "live": (f"/runs/{run.id}/events?" + urlencode({"job": name})
                 if run.outcome == "running" else None),
        "styles": styles(),
    }
