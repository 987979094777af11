"""Graph pictures: DOT, Mermaid and images made by the real ``dot`` program."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from dojobber import DoJobber, DummyJob, Job, JobStatus, RunResult, UnknownJobError
from dojobber.graph import JobGraph
from dojobber.render import (
    DEFAULT_MAX_NODES,
    STYLES,
    GraphvizFailedError,
    GraphvizNotFoundError,
    GraphvizPackageMissingError,
    LayoutTimeoutError,
    NoImageViewerError,
    UnsupportedFormatError,
    engines,
    open_image,
    render,
    to_dot,
    to_mermaid,
)
from tests.fakes.procs import wait_until

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz 'dot' is not installed")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent

ODD_NAMES = [
    'Say "hi": to ünïcödé ✓',
    "back\\slash \\n and \\l",
    "<b>not html</b> & #1; `tick` [x] {y} (z) |w|",
    "end",
]


# ----------------------------------------------------------------------
# A graph with every status, a dummy job and odd names.
class Fine(Job):
    def Check(self) -> str:
        return "fine"


class Fixed(Job):
    """Fails its first Check; Run fixes it (CHANGED)."""

    def Check(self) -> None:
        if not self.storage.get("done"):
            raise LookupError("not yet")

    def Run(self) -> None:
        self.storage["done"] = True


class Broken(Job):
    TRIES = 2
    RETRY_DELAY = 0

    def Check(self) -> None:
        raise ValueError("disk 'full': no space left\nsecond line is not shown")

    def Run(self) -> None:
        pass


class NeedsBroken(Job):
    DEPS = [Broken, Fine]

    def Check(self) -> None:
        pass


ODD = [Fine.variant(name) for name in ODD_NAMES]


class Group(DummyJob):
    DEPS = [Fine, Fixed, NeedsBroken, *ODD]


class Elsewhere(Job):
    def Check(self) -> None:
        pass


class Root(DummyJob):
    DEPS = [Group, Elsewhere]


EXPECTED = {
    "Fine": JobStatus.OK,
    "Fixed": JobStatus.CHANGED,
    "Broken": JobStatus.FAILED,
    "NeedsBroken": JobStatus.BLOCKED,
    "Group": JobStatus.BLOCKED,
    "Elsewhere": JobStatus.PENDING,
    "Root": JobStatus.PENDING,
    **{name: JobStatus.OK for name in ODD_NAMES},
}


@pytest.fixture(scope="module")
def run() -> tuple[DoJobber, RunResult]:
    dojob = DoJobber()
    dojob.configure(Root)
    result = dojob.checknrun(Group)
    assert {job.name: job.status for job in result} == EXPECTED
    return dojob, result


def edges_of(graph: JobGraph) -> set[tuple[str, str]]:
    """(dependency, dependant) name pairs, walked from DEPS independently."""
    return {(dep.__name__, cls.__name__) for cls in graph.classes for dep in cls.DEPS}


def reduced_edges_of(graph: JobGraph) -> set[tuple[str, str]]:
    """The edges a default picture draws: networkx's transitive reduction of
    the DEPS edges (an implementation independent of dojobber's)."""
    import networkx

    full = networkx.DiGraph(list(edges_of(graph)))
    full.add_nodes_from(cls.__name__ for cls in graph.classes)
    return set(networkx.transitive_reduction(full).edges)


def chain_graph(n: int, fail_at: int | None = None) -> tuple[JobGraph, RunResult]:
    """A ladder of n jobs: job i depends on i-1 and i-2; maybe one fails."""
    classes: list[type[Job]] = []
    for i in range(n):

        def check(self: Job, _i: int = i) -> None:
            if _i == fail_at:
                raise RuntimeError(f"job {_i} broke")

        deps = classes[-2:]
        classes.append(type(f"Job{i}", (Job,), {"DEPS": deps, "Check": check, "TRIES": 1}))
    dojob = DoJobber()
    dojob.configure(classes[-1])
    return dojob.jobs, dojob.checknrun()


# ----------------------------------------------------------------------
# Parsing the outputs
def svg_nodes(svg: bytes) -> dict[str, dict[str, Any]]:
    """Job name (the bold first label line) -> fill colour and class of its node."""
    ns = "{http://www.w3.org/2000/svg}"
    root = ET.fromstring(svg)
    found: dict[str, dict[str, Any]] = {}
    for group in root.iter(f"{ns}g"):
        classes = group.get("class", "").split()
        if "node" not in classes:
            continue
        shape = next(
            el for el in group.iter() if el.tag in {f"{ns}path", f"{ns}polygon", f"{ns}ellipse"}
        )
        texts = [el for el in group.iter(f"{ns}text")]
        assert texts[0].get("font-weight") == "bold"
        found[texts[0].text or ""] = {
            "fill": shape.get("fill"),
            "shape": shape.tag.removeprefix(ns),
            "classes": classes,
            "lines": [t.text for t in texts[1:]],
        }
    return found


MERMAID_ENTITY = re.compile(r"#(\w+);")
MERMAID_NAMED = {"quot": '"', "amp": "&", "lt": "<", "gt": ">"}


def mermaid_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return MERMAID_NAMED[code] if code in MERMAID_NAMED else chr(int(code))

    return MERMAID_ENTITY.sub(one, text)


def parse_mermaid(text: str) -> dict[str, Any]:
    """Check each line against the flowchart grammar's basics; return what it
    declares.  Raises AssertionError on any line that fits no rule."""
    lines = text.splitlines()
    header = re.fullmatch(r"(graph|flowchart) (TB|TD|BT|LR|RL)", lines[0])
    assert header, lines[0]
    ident = r"[A-Za-z_][A-Za-z0-9_]*"
    # Quoted label text: no raw quote, and no raw < > & ` (entity codes only),
    # except the <br/> line breaks.
    label = r'"((?:[^"<>&`]|<br/>)*)"'
    nodes: dict[str, list[str]] = {}
    shapes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    class_of: dict[str, str] = {}
    class_defs: dict[str, str] = {}
    depth = 0
    for line in lines[1:]:
        line = line.strip()
        if not line or line.startswith("%%"):
            continue
        if m := re.fullmatch(rf"({ident})(\[|\(\[){label}(\]|\]\))(:::{ident})?", line):
            assert (m.group(2), m.group(4)) in {("[", "]"), ("([", "])")}, line
            assert m.group(1) not in nodes, f"node declared twice: {line}"
            nodes[m.group(1)] = [mermaid_unescape(p) for p in m.group(3).split("<br/>")]
            shapes[m.group(1)] = m.group(2)
        elif m := re.fullmatch(rf"({ident}) --> ({ident})", line):
            edges.append((m.group(1), m.group(2)))
        elif m := re.fullmatch(rf"classDef ({ident}) ([\w#:, .\-]+)", line):
            class_defs[m.group(1)] = m.group(2)
        elif m := re.fullmatch(rf"class ({ident}(?:,{ident})*) ({ident})", line):
            for node in m.group(1).split(","):
                class_of[node] = m.group(2)
        elif re.fullmatch(rf"subgraph {ident}\[{label}\]", line):
            depth += 1
        elif line == "end":
            depth -= 1
        elif re.fullmatch(r"direction (TB|BT|LR|RL)", line):
            assert depth > 0
        else:
            raise AssertionError(f"not a flowchart line: {line!r}")
    assert depth == 0
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    assert set(class_of.values()) <= set(class_defs)
    return {"nodes": nodes, "edges": edges, "class_of": class_of, "shapes": shapes}


def job_nodes(parsed: dict[str, Any]) -> dict[str, str]:
    """Mermaid id -> job name, legend nodes left out."""
    return {i: lines[0] for i, lines in parsed["nodes"].items() if not i.startswith("legend_")}


@pytest.fixture
def no_dot_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


@pytest.fixture
def no_graphviz_at_all(no_dot_on_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the dot program nor pygraphviz (import pygraphviz -> ImportError)."""
    monkeypatch.setitem(sys.modules, "pygraphviz", None)


# ----------------------------------------------------------------------
# Images from the real dot program
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_dot
def test_png_has_signature_and_sizes_follow_the_graph(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    small = render(dojob.jobs, result, "png", legend=False)
    graph, big_result = chain_graph(40)
    big = render(graph, big_result, "png", legend=False)
    (sw, sh), (bw, bh) = png_size(small), png_size(big)
    # 11 jobs in 4 ranks: a few hundred pixels each way; a ladder of 40
    # ranks, one job wide: much taller and narrower.
    assert 100 < sw < 4000 and 100 < sh < 2000
    assert bh > 5 * sh and bw < sw
    assert bh > 40 * 30  # at least a node height per rank
    with_legend = render(dojob.jobs, result, "png")
    assert png_size(with_legend)[1] > sh


@needs_dot
def test_svg_nodes_carry_their_status_fill(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    nodes = svg_nodes(render(dojob.jobs, result, "svg"))
    assert set(nodes) == set(EXPECTED)  # odd names came through intact
    for name, status in EXPECTED.items():
        assert nodes[name]["fill"] == STYLES[status].fill, name
        assert status.value in nodes[name]["classes"]
    assert len({style.fill for style in STYLES.values()}) == len(JobStatus)
    # Dummy jobs are ovals, the others (rounded) boxes.
    assert nodes["Group"]["shape"] == "ellipse" and "dummy" in nodes["Group"]["classes"]
    assert nodes["Fine"]["shape"] != "ellipse"
    # A failed job shows the first line of its exception, and only that.
    assert nodes["Broken"]["lines"] == ["ValueError: disk 'full': no space left"]


@needs_dot
def test_svg_details_show_tries_and_durations(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    nodes = svg_nodes(render(dojob.jobs, result, "svg", details=True))
    broken = " ".join(nodes["Broken"]["lines"])
    assert "tries 2/2" in broken
    assert re.search(r"check [\d.]+ (µs|ms|s)\b", broken), broken
    assert "run" in " ".join(nodes["Fixed"]["lines"])
    assert nodes["Elsewhere"]["lines"] == []  # never tried: nothing to tell


@needs_dot
def test_dot_round_trips_through_dot_without_warnings(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    every, reduced = edges_of(dojob.jobs), reduced_edges_of(dojob.jobs)
    assert reduced < every  # the fixture has an implied edge
    for source, expected in (
        (to_dot(dojob.jobs, result, details=True), reduced),
        (to_dot(dojob.jobs), reduced),
        (to_dot(dojob.jobs, result, all_edges=True), every),
    ):
        done = subprocess.run(
            [DOT or "dot", "-Tjson"], input=source.encode(), capture_output=True, timeout=60
        )
        assert done.returncode == 0
        assert done.stderr == b""
        laid_out = json.loads(done.stdout)
        objects = laid_out["objects"]
        assert len(objects) == len(dojob.jobs)
        assert len(laid_out["edges"]) == len(expected)
        ids = {obj["_gvid"]: obj["name"] for obj in objects}
        names = {f"j{i}": name for i, name in enumerate(dojob.jobs.names)}
        drawn = {(names[ids[e["tail"]]], names[ids[e["head"]]]) for e in laid_out["edges"]}
        assert drawn == expected  # dependency -> dependant


@needs_dot
def test_write_graph_writes_last_run_or_plain_structure() -> None:
    dojob = DoJobber()
    dojob.configure(Root)
    before = io.BytesIO()
    dojob.write_graph(before, "svg")
    assert {n["fill"] for n in svg_nodes(before.getvalue()).values()} == {
        STYLES[JobStatus.PENDING].fill
    }
    dojob.checknrun(Group)
    after = io.BytesIO()
    dojob.write_graph(after)  # upstream default: png
    assert after.getvalue().startswith(PNG_SIGNATURE)
    text = io.StringIO()
    dojob.write_graph(text, "mermaid")
    assert parse_mermaid(text.getvalue())["edges"]
    with pytest.raises(TypeError, match="binary mode"):
        dojob.write_graph(io.StringIO(), "png")


@needs_dot
def test_repr_svg_for_notebooks(run: tuple[DoJobber, RunResult]) -> None:
    _, result = run
    svg = result._repr_svg_()
    assert svg is not None
    assert svg_nodes(svg.encode())["Broken"]["fill"] == STYLES[JobStatus.FAILED].fill


# ----------------------------------------------------------------------
# Without Graphviz
def test_without_dot_text_works_and_images_say_what_to_install(
    run: tuple[DoJobber, RunResult], no_graphviz_at_all: None
) -> None:
    dojob, result = run
    assert to_dot(dojob.jobs, result).startswith("digraph")
    assert render(dojob.jobs, result, "dot").decode().startswith("digraph")
    parse_mermaid(render(dojob.jobs, result, "mermaid").decode())
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz") as err:
        render(dojob.jobs, result, "png")
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    with pytest.raises(GraphvizNotFoundError):
        dojob.write_graph(io.BytesIO(), "svg")
    fresh = skip_two_graph(3)[1]  # (a result caches its notebook picture)
    assert fresh._repr_svg_() is None
    assert "no picture" in fresh._repr_html_() and "pip install" in fresh._repr_html_()


def test_without_the_graphviz_package(
    run: tuple[DoJobber, RunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    dojob, result = run
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    parse_mermaid(to_mermaid(dojob.jobs, result))
    with pytest.raises(GraphvizPackageMissingError, match=r"dojobber\[graph\]"):
        to_dot(dojob.jobs, result)
    with pytest.raises(GraphvizPackageMissingError):
        render(dojob.jobs, result, "svg")


def test_import_dojobber_does_not_import_graphviz() -> None:
    code = "import sys, dojobber; d = dojobber.DoJobber(); print('graphviz' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.stdout.strip() == "False", done.stderr


def test_dot_failing_is_reported_with_its_message(
    run: tuple[DoJobber, RunResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for a broken Graphviz install (not for the code under test).
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: renderer for png is unavailable' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    dojob, result = run
    with pytest.raises(GraphvizFailedError, match="renderer for png is unavailable"):
        render(dojob.jobs, result, "png")


def test_unsupported_formats(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    for fmt in ("bmpx", "x11", "", "mermaid2"):
        with pytest.raises(UnsupportedFormatError, match="png"):
            render(dojob.jobs, result, fmt)
    assert render(dojob.jobs, result, ".MMD").startswith(b"flowchart")


# ----------------------------------------------------------------------
# Mermaid, focus and caps
def test_mermaid_parses_with_escaped_labels_and_one_line_per_edge(
    run: tuple[DoJobber, RunResult],
) -> None:
    dojob, result = run
    parsed = parse_mermaid(to_mermaid(dojob.jobs, result))
    names = job_nodes(parsed)
    assert sorted(names.values()) == sorted(EXPECTED)
    edges = [(names[a], names[b]) for a, b in parsed["edges"]]
    assert len(edges) == len(set(edges))
    assert set(edges) == reduced_edges_of(dojob.jobs)
    for node, name in names.items():
        assert parsed["class_of"][node] == EXPECTED[name].value
    ovals = {names[n] for n, shape in parsed["shapes"].items() if shape == "([" and n in names}
    assert ovals == {"Group", "Root"}
    broken = next(lines for n, lines in parsed["nodes"].items() if lines[0] == "Broken")
    assert broken[1] == "ValueError: disk 'full': no space left"
    legend = [lines[0] for n, lines in parsed["nodes"].items() if n.startswith("legend_")]
    assert any("depends on" in text for text in legend)


def test_focus_failures_draws_failed_blocked_and_path_to_root() -> None:
    graph, result = chain_graph(30, fail_at=12)
    parsed = parse_mermaid(to_mermaid(graph, result, focus="failures"))
    drawn = set(job_nodes(parsed).values())
    # Independently: the failed job and everything that depends on it.
    expected = {"Job12"}
    for cls in graph.classes:
        if any(dep.__name__ in expected for dep in cls.DEPS):
            expected.add(cls.__name__)
    assert drawn == expected == {f"Job{i}" for i in range(12, 30)}
    note = parsed["nodes"]["legend_note"][0]
    assert "showing 18 of 30 jobs" in note and "12 ok" in note


def test_focus_on_a_job_and_unknown_focus(run: tuple[DoJobber, RunResult]) -> None:
    dojob, result = run
    drawn = job_nodes(parse_mermaid(to_mermaid(dojob.jobs, result, focus="NeedsBroken")))
    # The job, what it depends on, and what depends on it up to the root.
    assert sorted(drawn.values()) == ["Broken", "Fine", "Group", "NeedsBroken", "Root"]
    with pytest.raises(UnknownJobError, match="Nope"):
        to_mermaid(dojob.jobs, result, focus="Nope")
    quiet = job_nodes(parse_mermaid(to_mermaid(*chain_graph(5), focus="failures")))
    assert list(quiet.values()) == ["Job4"]  # nothing failed: just the root


def test_max_nodes_keeps_root_and_failures_and_says_what_is_left_out() -> None:
    graph, result = chain_graph(200, fail_at=3)
    parsed = parse_mermaid(to_mermaid(graph, result, max_nodes=20))
    drawn = set(job_nodes(parsed).values())
    assert len(drawn) == 20
    assert {"Job199", "Job3"} <= drawn
    # The failure comes with the jobs it blocks on its way up to the root.
    names = job_nodes(parsed)
    assert any(names[a] == "Job3" for a, _ in parsed["edges"])
    assert "showing 20 of 200 jobs" in parsed["nodes"]["legend_note"][0]
    with pytest.raises(ValueError, match="max_nodes"):
        to_mermaid(graph, result, max_nodes=0)


def test_big_graphs_are_capped_by_default_and_none_draws_all() -> None:
    graph, result = chain_graph(DEFAULT_MAX_NODES + 150)
    default = parse_mermaid(to_mermaid(graph, result))
    drawn = set(job_nodes(default).values())
    assert len(drawn) == DEFAULT_MAX_NODES
    # Nearest the root first: the jobs furthest down are left out (Job149
    # and Job150 are as far from the root: the tie goes to the lower index).
    assert f"Job{DEFAULT_MAX_NODES + 149}" in drawn
    assert min(int(name[3:]) for name in drawn) == 149
    note = default["nodes"]["legend_note"][0]
    assert f"showing {DEFAULT_MAX_NODES} of {DEFAULT_MAX_NODES + 150} jobs" in note
    assert f"over max_nodes={DEFAULT_MAX_NODES}; max_nodes=None draws all" in note
    # The DOT text (what an image is laid out from) is capped the same way.
    assert len(re.findall(r"^\tj\d+ \[", to_dot(graph, result), re.M)) == DEFAULT_MAX_NODES
    whole = job_nodes(parse_mermaid(to_mermaid(graph, result, max_nodes=None)))
    assert len(whole) == DEFAULT_MAX_NODES + 150
    # Up to the cap nothing is left out and nothing is said.
    small, small_result = chain_graph(DEFAULT_MAX_NODES)
    small_note = parse_mermaid(to_mermaid(small, small_result))["nodes"].get("legend_note", [])
    assert "showing" not in " ".join(small_note)


@needs_dot
def test_max_nodes_in_svg_marks_hidden_dependencies() -> None:
    graph, result = chain_graph(50)
    nodes = svg_nodes(render(graph, result, "svg", max_nodes=5))
    assert len(nodes) == 5
    assert any("not shown" in " ".join(n["lines"]) for n in nodes.values())


def test_no_act_and_not_run_legends() -> None:
    dojob = DoJobber()
    dojob.configure(Root, no_act=True)
    result = dojob.checknrun()
    legend = parse_mermaid(to_mermaid(dojob.jobs, result))["nodes"]
    assert legend["legend_would_run"] == ["would run: Check failed (dry run)"]
    assert legend["legend_not_checked"] == ["not checked: depends on a change (dry run)"]
    assert "legend_failed" not in legend  # nothing failed: every Check just said "not yet"
    plain = parse_mermaid(to_mermaid(dojob.jobs))["nodes"]
    assert plain["legend_pending"] == ["not run yet"]


# ----------------------------------------------------------------------
# display_graph
@needs_dot
def test_display_graph_opens_a_viewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dojob = DoJobber()
    dojob.configure(Root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").symlink_to(DOT or "dot")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        assert dojob.display_graph() is None  # no viewer on PATH: like upstream, no error
    assert "xdg-open" in caplog.text and "write_graph" in caplog.text
    # A stand-in viewer that takes the file it was asked to show.
    shown = tmp_path / "shown.png"
    viewer = bin_dir / "xdg-open"
    viewer.write_text(f"#!/bin/sh\nexec /bin/mv \"$1\" {shown}\n")
    viewer.chmod(0o755)
    dojob.display_graph()
    wait_until(lambda: shown.exists() and shown.stat().st_size, 30, "the viewer to take the file")
    assert shown.read_bytes().startswith(PNG_SIGNATURE)


def test_display_graph_without_a_display_logs_why_and_returns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cron script's display_graph() after its run does nothing (upstream's
    behaviour) and logs that no display is set, not that a viewer is missing."""
    dojob = DoJobber()
    dojob.configure(Root)
    dojob.checknrun()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        dojob.display_graph()
    [record] = [r for r in caplog.records if r.name == "dojobber"]
    assert "DISPLAY" in record.getMessage()
    assert "install an image viewer" not in record.getMessage()
    with pytest.raises(NoImageViewerError, match="DISPLAY") as info:
        open_image("whatever.png")
    assert info.value.no_display


# ----------------------------------------------------------------------
# The demo
def test_demo_draws_without_system_graphviz(tmp_path: Path) -> None:
    """`make demo` installs only '.[graph]': pygraphviz's wheel draws the
    PNGs with no dot program on PATH."""
    pytest.importorskip("pygraphviz")
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "website.py"), "--dir", str(tmp_path / "site"),
         "--graphs", str(tmp_path / "graphs")],
        capture_output=True, text=True, timeout=180, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    pngs = sorted(tmp_path.glob("graphs/*.png"))
    assert [p.name for p in pngs] == ["website-failing-run.png", "website-final-run.png"]
    for png in pngs:
        assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_demo_finishes_without_any_graphviz(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "pygraphviz.py").write_text("raise ImportError('pygraphviz blocked by the test')\n")
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "website.py"), "--dir", str(tmp_path / "site"),
         "--graphs", str(tmp_path / "graphs")],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "no picture" in done.stdout and "pip install 'dojobber[graph]'" in done.stdout
    assert not list(tmp_path.glob("graphs/*.png"))


@needs_dot
def test_demo_writes_pngs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "website.py"), "--dir", str(tmp_path / "site"),
         "--graphs", str(tmp_path / "graphs")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    pngs = sorted((tmp_path / "graphs").glob("*.png"))
    assert [p.name for p in pngs] == ["website-failing-run.png", "website-final-run.png"]
    for png in pngs:
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        assert str(png) in done.stdout


@pytest.mark.slow
@needs_dot
def test_graph_pictures_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "graph_pictures.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for png in ("fleet-failures.png", "fleet-capped.png"):
        assert (tmp_path / png).read_bytes().startswith(PNG_SIGNATURE)
    parsed = parse_mermaid((tmp_path / "fleet.mmd").read_text())
    assert sorted(job_nodes(parsed).values()) == [
        "Fleet healthy", "host17 config", "host17 package", "host17 service"
    ]
    assert len(svg_nodes((tmp_path / "fleet.svg").read_bytes())) == 121


# ----------------------------------------------------------------------
# Hard shapes for dot: transitive reduction by default, bounded layout time
def skip_two_graph(n: int) -> tuple[JobGraph, RunResult]:
    """Job i needs job i-2 and the root needs all of them: the issue's
    200-job picture that dot could not lay out in 30 s."""
    classes: list[type[Job]] = []
    for i in range(n):
        classes.append(type(f"Skip{i}", (DummyJob,), {"DEPS": [classes[i - 2]] if i >= 2 else []}))
    root = type("OverAll", (DummyJob,), {"DEPS": classes})
    dojob = DoJobber()
    dojob.configure(root)
    return dojob.jobs, dojob.checknrun()


def test_pictures_leave_out_implied_edges_and_say_so() -> None:
    graph, result = skip_two_graph(200)
    parsed = parse_mermaid(to_mermaid(graph, result))
    names = job_nodes(parsed)
    drawn = {(names[a], names[b]) for a, b in parsed["edges"]}
    assert drawn == reduced_edges_of(graph)
    assert len(drawn) == 200 and len(edges_of(graph)) == 398
    note = " ".join(parsed["nodes"]["legend_note"])
    assert "198 dependencies implied by a longer path not drawn" in note
    every = parse_mermaid(to_mermaid(graph, result, all_edges=True))
    assert len(every["edges"]) == 398 and "legend_note" not in every["nodes"]


@pytest.mark.parametrize("engine", ["dot", "pygraphviz"])
def test_a_layout_over_its_time_stops_with_advice(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine == "dot":
        if DOT is None:
            pytest.skip("Graphviz 'dot' is not installed")
    else:
        pytest.importorskip("pygraphviz")
        (tmp_path / "bin").mkdir()
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # only pygraphviz left
    graph, result = skip_two_graph(200)
    assert render(graph, result, "svg", timeout=120).lstrip().startswith(b"<")  # reduced
    with pytest.raises(LayoutTimeoutError) as info:
        render(graph, result, "svg", all_edges=True, timeout=1)
    message = str(info.value)
    assert "201 jobs, 398 edges" in message and "took longer than 1s" in message
    assert "focus='failures'" in message and "max_nodes" in message
    assert isinstance(info.value, TimeoutError)


def test_notebook_html_shows_a_table_and_the_picture(run: tuple[DoJobber, RunResult]) -> None:
    _, result = run
    page = result._repr_html_()
    assert result.summary().split(" in ")[0] in page
    assert "<li><b>Broken</b>" in page and "<td>failed</td>" in page
    if engines():
        assert "<svg" in page and result._repr_svg_() in page
    before = DoJobber()
    assert before._repr_html_() is None  # not configured: plain repr
    before.configure(Root)
    assert "not run yet" in (before._repr_html_() or "")


def test_notebook_picture_never_holds_the_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layout over the notebook's bound gives the table and how to draw."""
    if "dot" not in engines():
        pytest.skip("the dot program bounds even small layouts")
    import dojobber.render.notebook as notebook

    monkeypatch.setattr(notebook, "NOTEBOOK_TIMEOUT", 1e-6)
    _, result = skip_two_graph(10)
    assert result._repr_svg_() is None
    assert "took more than" in result._repr_html_()
