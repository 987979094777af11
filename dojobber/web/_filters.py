"""Jinja filters: times, durations, text shown as text, sparklines."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

__all__ = ["install"]

#: Control characters (ANSI escapes start with ESC) other than newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def visible(text: Any) -> str:
    """``text`` with control characters written out (``\\x1b``), so that an
    ANSI escape or a NUL in a job's output is seen, not obeyed."""
    if text is None:
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{int(seconds % 1 * 1000):03d}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def level(number: int) -> str:
    return logging.getLevelName(number)


def compact(value: Any) -> str:
    """A JSON value on one line (arguments, keyword arguments)."""
    return visible(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def arguments(value: Any) -> str:
    """Stored arguments (``{"args": [...], "kwargs": {...}}``) as a call's
    argument list: ``"web1", env="prod"``."""
    if isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
        dump = json.dumps
        parts = [dump(a, ensure_ascii=False) for a in value.get("args") or []]
        parts += [f"{k}={dump(v, ensure_ascii=False)}"
                  for k, v in (value.get("kwargs") or {}).items()]
        return visible(", ".join(parts)) if parts else "none"
    return compact(value)


def spark(points: list[dict[str, Any]], width: int = 60, height: int = 16) -> list[dict[str, Any]]:
    """Bars of a trend sparkline: height by failed + blocked jobs, class by
    outcome; a converged run is a short full-colour bar."""
    if not points:
        return []
    top = max(1, *(p["bad"] for p in points))
    step = width / max(len(points), 1)
    bars = []
    for i, p in enumerate(points):
        h = 3 if p["bad"] == 0 else 3 + (height - 3) * p["bad"] / top
        bars.append({"x": round(i * step + 0.5, 2), "y": round(height - h, 2),
                     "w": round(max(step - 1.5, 1), 2), "h": round(h, 2),
                     "outcome": p["outcome"], "id": p["id"], "bad": p["bad"]})
    return bars


def install(env: Environment) -> None:
    env.filters.update(visible=visible, when=when, clock=clock, duration=duration,
                       level=level, compact=compact, arguments=arguments,
                       safe_json_block=json_block)
    env.globals.update(spark=spark)


def json_block(value: Any) -> Markup:
    """The page's data for its script, as a JSON block (``tojson`` escapes
    ``<``, ``>``, ``&`` and ``'``, so no text in it can end the block)."""
    opening = Markup('<script type="application/json" id="page-data">')
    return Markup(opening + Markup(value) + Markup("</script>"))
