"""Download throughput: dojobber's Download job vs curl, from a loopback server.

Generates a file (1 GiB by default) in a temporary directory, serves it with
the fake OBS download area (tests/fakes/obs.py, os.sendfile) in a separate
process, then alternates runs of

* ``Download`` through a real ``DoJobber`` graph (first Check, Run = stream
  with sha256 verification against the expected digest, recheck with a
  conditional HEAD), and
* ``curl -s -o FILE URL`` (no verification),

deleting the result after each run.  Reports the median of each and their
ratio; ``--write benchmarks/README.md`` replaces the ``## Download`` section.

    .venv/bin/python benchmarks/bench_download.py [--size-mib 1024] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _readme import write_section  # noqa: E402  (benchmarks/ is on sys.path)


def serve(path: str) -> None:
    """Child process: serve ``path`` and print its URL, until stdin closes."""
    from tests.fakes.obs import FakeObs

    with FakeObs(tmpdir=Path(path).parent / "server") as obs:
        url = obs.put_file("repositories/bench/images/big.raw", Path(path))
        print(url, flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def served(source: Path) -> Iterator[str]:
    """Serve ``source`` from a child process (:func:`serve`); yield its URL."""
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(source)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def make_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; return their sha256."""
    digest = hashlib.sha256()
    block = os.urandom(16 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            block = block[1:] + block[:1] if left else block
    return digest.hexdigest()


def run_ours(url: str, sha256: str, dest: Path, fsync: bool) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of one converging run."""
    from dojobber import DoJobber
    from dojobber.contrib.download import Download

    job = Download.variant("Bench download", url=url, sha256=sha256, dest_dir=str(dest),
                           fsync=fsync)
    dj = DoJobber()
    dj.configure(job, default_tries=1)
    cpu = time.process_time()
    start = time.perf_counter()
    dj.checknrun()
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if not dj.success():
        raise SystemExit(f"download failed: {dj.nodeexceptions}")
    return took, cpu


def children_cpu() -> float:
    """CPU seconds used by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(url: str, dest: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one curl run."""
    cpu = children_cpu()
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", str(dest / "big.raw"), url], check=True)
    return time.perf_counter() - start, children_cpu() - cpu


def measure(where: str | None, size: int, runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) of each run of each client, in rotating order, into ``where``."""
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir=where) as tmp:
        source = Path(tmp) / "big.raw"
        sha256 = make_file(source, size)
        found: dict[str, list[tuple[float, float]]] = {k: [] for k in CLIENTS}
        with served(source) as url:
            for i in range(runs):
                for kind in CLIENTS[i % 3:] + CLIENTS[:i % 3]:
                    dest = Path(tmp) / "dest"
                    dest.mkdir()
                    if kind == "curl":
                        found[kind].append(run_curl(url, dest))
                    else:
                        found[kind].append(run_ours(url, sha256, dest, kind == "fsync"))
                    shutil.rmtree(dest)
    return found


CLIENTS = ["fsync", "nofsync", "curl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", action="append",
                        help="where to put the file and downloads; repeat for several "
                        "(default: /dev/shm, a tmpfs, and the system temp dir)")
    parser.add_argument("--write", metavar="README", help="replace its '## Download' section")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    dirs = args.dir or [d for d in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(d)]
    size = args.size_mib << 20
    mib = size / (1 << 20)
    load0 = os.getloadavg()[0]
    rows: list[str] = []
    raw: list[str] = []
    for where in dirs:
        found = measure(where, size, args.runs)
        wall = {k: statistics.median(t for t, _ in v) for k, v in found.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in found.items()}

        cells = {k: f"{wall[k]:.2f} ({mib / wall[k]:.0f} MiB/s, CPU {cpu[k]:.2f})"
                 for k in CLIENTS}
        paired = {k: statistics.median(c[0] / o[0] for c, o in
                                       zip(found["curl"], found[k], strict=True))
                  for k in ("fsync", "nofsync")}
        rows.append(f"| {where} | {cells['fsync']} | {cells['nofsync']} | {cells['curl']} | "
                    f"**{wall['curl'] / wall['fsync']:.2f}x** / "
                    f"{wall['curl'] / wall['nofsync']:.2f}x | "
                    f"{paired['fsync']:.2f}x / {paired['nofsync']:.2f}x | "
                    f"{cpu['curl'] / cpu['fsync']:.2f} |")
        raw.append(f"{where}: " + "; ".join(
            f"{k} {[(round(t, 2), round(c, 2)) for t, c in v]}" for k, v in found.items()))
    lines = [
        "## Download",
        "",
        f"`{' '.join(['benchmarks/bench_download.py', *sys.argv[1:]])}` on "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: a {mib:.0f} MiB file from the "
        "fake OBS download area on 127.0.0.1 (separate process, sendfile), fetched by the "
        "`Download` job through a `DoJobber` graph (sha256 verified; default fsync=True, "
        "and fsync=False) and by `curl -o` (no verification), in rotating order; median "
        f"wall seconds (and client CPU seconds) of {args.runs} runs each.  Load average "
        "before/after: "
        f"{load0:.1f}/{os.getloadavg()[0]:.1f}.",
        "",
        "| destination | Download s | Download fsync=False s | curl s | "
        "throughput vs curl (fsync=True / False) | same, median of each round's ratio | "
        "CPU curl/Download |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Target: >= 0.8x curl's throughput.  The next-to-last column pairs each curl",
        "run with the Download runs of the same round (the three clients run back to",
        "back) before taking the median, because curl's own times swing by 2-3x",
        "between runs (raw figures below).  What the figures say is discussed below",
        "this section.",
        "",
    ]
    lines += ["Raw (wall s, CPU s) per run:", "", *(f"- {r}" for r in raw), ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        body = text.split("\n", 1)[1]  # the lines under "## Download"
        write_section(Path(args.write), "download", "Download", body)


if __name__ == "__main__":
    main()
