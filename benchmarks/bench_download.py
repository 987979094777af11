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
import hashlib
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(path: str) -> None:
    """Child process: serve ``path`` and print its URL, until stdin closes."""
    from tests.fakes.obs import FakeObs

    with FakeObs(tmpdir=Path(path).parent / "server") as obs:
        url = obs.put_file("repositories/bench/images/big.raw", Path(path))
        print(url, flush=True)
        sys.stdin.read()


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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(url: str, dest: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one curl run."""
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", str(dest / "big.raw"), url], check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-fsync", action="store_true",
                        help="Download(fsync=False), like curl (default: fsync=True)")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where to put the file and downloads (default: /dev/shm, a "
                        "tmpfs, so the disk's writeback does not drown the clients)")
    parser.add_argument("--write", metavar="README", help="replace its '## Download' section")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    size = args.size_mib << 20
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir=args.dir) as tmp:
        source = Path(tmp) / "big.raw"
        sha256 = make_file(source, size)
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(source)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            ours: list[tuple[float, float]] = []
            curl: list[tuple[float, float]] = []
            for i in range(args.runs):
                for kind in (("ours", "curl") if i % 2 == 0 else ("curl", "ours")):
                    dest = Path(tmp) / f"dest-{kind}"
                    dest.mkdir()
                    if kind == "ours":
                        ours.append(run_ours(url, sha256, dest, not args.no_fsync))
                    else:
                        curl.append(run_curl(url, dest))
                    shutil.rmtree(dest)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=30)
    mib = size / (1 << 20)
    ours_t = statistics.median(t for t, _ in ours)
    curl_t = statistics.median(t for t, _ in curl)
    ours_cpu = statistics.median(c for _, c in ours)
    curl_cpu = statistics.median(c for _, c in curl)
    ratio = (mib / ours_t) / (mib / curl_t)
    lines = [
        "## Download",
        "",
        f"`{' '.join(['benchmarks/bench_download.py', *sys.argv[1:]])}` on "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: a {mib:.0f} MiB file from the "
        "fake OBS download area on 127.0.0.1 (separate process, sendfile) into "
        f"{args.dir or tempfile.gettempdir()}, median of {args.runs} alternating runs; "
        f"load average before/after: {load0:.1f}/{os.getloadavg()[0]:.1f} (the machine is "
        "shared: the hash needs a second core, so a busy machine hurts Download more).",
        "",
        "| client | median wall s | MiB/s | median CPU s (client) |",
        "|---|---|---|---|",
        f"| `Download` job (sha256 verified, fsync={not args.no_fsync}) | {ours_t:.2f} | "
        f"{mib / ours_t:.0f} | {ours_cpu:.2f} |",
        f"| `curl -o` (no verification) | {curl_t:.2f} | {mib / curl_t:.0f} | "
        f"{curl_cpu:.2f} |",
        "",
        f"Throughput ratio Download/curl: **{ratio:.2f}x** (target >= 0.8x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print("all runs (wall, cpu) ours:", [(round(t, 2), round(c, 2)) for t, c in ours],
          "curl:", [(round(t, 2), round(c, 2)) for t, c in curl])
    if args.write:
        readme = Path(args.write)
        old = readme.read_text() if readme.exists() else "# Benchmarks\n"
        pattern = re.compile(r"^## Download\n.*?(?=^## |\Z)", re.S | re.M)
        new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else \
            old.rstrip("\n") + "\n\n" + text
        readme.write_text(new)


if __name__ == "__main__":
    main()
