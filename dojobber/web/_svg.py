"""A stored run's picture as SVG for the run page: drawn by
:func:`dojobber.render.render`, cleaned, with each job a link to its page.

Graphviz escapes label text, and the page's Content-Security-Policy runs
no inline script; on top of that the SVG is parsed here and anything that
could execute (``script``, ``foreignObject``, ``on*`` attributes, links
other than ours) is dropped before it reaches a browser.  Each job's node
gets ``data-job`` (its name), its name as the hover title and a link to its
job page.  Pictures are kept (a few dozen, least recently used out) per run,
options and state of the run, so a reload costs no new layout; a picture
being drawn is drawn once, however many ask for it meanwhile.  The run page
asks for its default picture as it is served (:meth:`PictureCache.prefetch`),
so the layout runs while the browser loads the page, not after.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DojobberError
from ..records import Browsable, RecordsError, stored_run
from ..render import FOCUS_FAILURES, GraphvizUnavailableError, RenderError, render
from ._data import BadParameterError, NotFoundError, job_url
from ._filters import visible

__all__ = ["GraphPicture", "PictureCache", "PictureUnavailableError", "clean_svg"]

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG)
ET.register_namespace("xlink", XLINK)

#: Elements that never belong in a job graph picture.
_DROP = {"script", "foreignObject", "iframe", "object", "embed", "use", "image", "style",
         "animate", "set", "animateTransform", "animateMotion", "handler", "listener"}
_XML_INVALID = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_HREF = {"href", f"{{{XLINK}}}href"}


class PictureUnavailableError(RuntimeError):
    """The picture cannot be drawn here (no Graphviz): HTTP 503."""


@dataclass(frozen=True)
class GraphPicture:
    svg: bytes
    #: Jobs drawn, and in the whole graph.
    drawn: int
    total: int
    focus: str | None
    max_nodes: int | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def clean_svg(data: bytes, names: list[str], run_id: int) -> tuple[bytes, int]:
    """``data`` (SVG from Graphviz) without anything executable, each job
    node (titled ``j<index>``) linked to its job page; returns it and the
    number of job nodes."""
    # Graphviz copies control characters of a job's name into the tooltip,
    # which XML forbids: show them written out instead.
    data = _XML_INVALID.sub(lambda m: b"\\x%02x" % m.group()[0], data)
    root = ET.fromstring(data)
    parents = {child: parent for parent in root.iter() for child in parent}
    for element in list(root.iter()):
        if _local(element.tag) in _DROP and element in parents:
            parents[element].remove(element)
            continue
        for attr in list(element.attrib):
            if _local(attr).lower().startswith("on") or attr in _HREF:
                del element.attrib[attr]
    drawn = 0
    for group in root.iter(f"{{{SVG}}}g"):
        if "node" not in group.get("class", "").split():
            continue
        title = group.find(f"{{{SVG}}}title")
        if title is None or not (title.text or "").startswith("j"):
            continue
        try:
            name = names[int((title.text or "")[1:])]
        except (ValueError, IndexError):
            continue
        drawn += 1
        # (control characters written out: XML has no place for them)
        group.set("data-job", visible(name))
        title.text = visible(name)
        link = group.find(f".//{{{SVG}}}a")
        if link is None:  # wrap the node's shapes in a link
            link = ET.Element(f"{{{SVG}}}a")
            for child in [c for c in group if c is not title]:
                group.remove(child)
                link.append(child)
            group.append(link)
        link.set("href", job_url(run_id, name))
        link.set(f"{{{XLINK}}}href", job_url(run_id, name))
    root.set("class", "job-graph")
    root.set("role", "img")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False), drawn


class PictureCache:
    """Draws run pictures and keeps the last ``size`` of them."""

    def __init__(self, size: int = 32, parallel: int = 2) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[Any, ...], GraphPicture] = OrderedDict()
        self._lock = threading.Lock()
        self._drawing = threading.BoundedSemaphore(parallel)
        #: Pictures being drawn, by key: set when drawn (or failed).
        self._busy: dict[tuple[Any, ...], threading.Event] = {}
        #: Draws pictures ahead of the browser's asking (one at a time).
        self._ahead = cf.ThreadPoolExecutor(1, thread_name_prefix="dojobber-picture")

    def prefetch(self, store: Callable[[], Browsable], run_id: int, default_max: int) -> None:
        """Start drawing run ``run_id``'s default picture in the background
        (``store()`` gives that thread's records connection); errors are
        left for the request that asks for it."""
        def draw() -> None:
            with contextlib.suppress(Exception):
                self.picture(store(), str(run_id), {}, default_max)

        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self._ahead.submit(draw)

    def warm(self) -> None:
        """Import in the background what drawing needs (networkx takes ~0.4 s),
        so that the first picture does not wait for it."""
        def load() -> None:
            with contextlib.suppress(ImportError):
                import networkx  # noqa: F401

        self._ahead.submit(load)

    def close(self) -> None:
        self._ahead.shutdown(wait=False, cancel_futures=True)

    def picture(
        self, store: Browsable, run_id: str, params: dict[str, str], default_max: int
    ) -> GraphPicture:
        """The picture of a run under the page's options: ``all=1`` draws
        everything; ``focus`` (``failures`` or a job name) and
        ``max_nodes`` as in :func:`~dojobber.render.render`.  A run bigger
        than ``default_max`` is drawn by default with at most that many jobs,
        failures and their path to the root first."""
        try:
            run = store.run(run_id)
        except RecordsError as err:
            raise NotFoundError(err.reason) from None
        states = store.job_states(run.id)
        failed = sum(1 for s, _t, _d in states.values() if s == "failed")
        focus = params.get("focus") or None
        max_text = params.get("max_nodes") or ""
        if params.get("all") in ("1", "true", "yes"):
            focus, max_nodes = None, None
        elif max_text:
            try:
                max_nodes = int(max_text)
            except ValueError:
                raise BadParameterError(
                    "max_nodes", f"{max_text!r} is not a whole number"
                ) from None
            if max_nodes < 1:
                raise BadParameterError("max_nodes", f"{max_nodes} is below 1")
        else:
            max_nodes = default_max if run.jobs > default_max else None
            if max_nodes is not None and focus is None and failed:
                focus = FOCUS_FAILURES
        key = (store.path, run.id, focus, max_nodes, run.outcome, len(states), failed)
        while True:
            with self._lock:
                kept = self._kept.get(key)
                if kept is not None:
                    self._kept.move_to_end(key)
                    return kept
                busy = self._busy.get(key)
                if busy is None:  # this thread draws it
                    self._busy[key] = threading.Event()
                    break
            busy.wait()  # another draws it: kept then (or it failed: draw here)
        try:
            with self._drawing:
                picture = self._draw(store, run.id, focus, max_nodes)
            with self._lock:
                self._kept[key] = picture
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
            return picture
        finally:
            with self._lock:
                self._busy.pop(key).set()

    @staticmethod
    def _draw(
        store: Browsable, run_id: int, focus: str | None, max_nodes: int | None
    ) -> GraphPicture:
        try:
            graph, result = stored_run(store, run_id)
        except RecordsError as err:
            raise NotFoundError(f"{err.reason} (yet)") from None
        try:
            data = render(graph, result, "svg", focus=focus, max_nodes=max_nodes, legend=False)
        except GraphvizUnavailableError as err:
            raise PictureUnavailableError(str(err)) from None
        except RenderError as err:
            raise PictureUnavailableError(str(err)) from None
        except DojobberError as err:  # an unknown focus job
            raise BadParameterError("focus", str(err)) from None
        svg, drawn = clean_svg(data, graph.names, run_id)
        return GraphPicture(svg, drawn, len(graph), focus, max_nodes)
