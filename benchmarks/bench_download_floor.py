"""Where a verified download's time goes, next to curl's, on this machine.

Serves a generated file from the fake OBS download area (as
``bench_download.py`` does) and times, in rounds, each part of the work a
verifying client does, alone, over one loopback connection each:

* ``curl -o`` (receive + write, no verification);
* receive only: ``readinto`` a 256 KiB buffer and drop it;
* receive + write: curl's work, in Python, as ``Download`` does it;
* receive + sha256 in one thread, no write: what the hashing core does when
  it also receives.  Bytes reach a core's cache only through a copy that
  core makes, so a core that hashes without receiving reads them from the
  other core's cache instead, at about the speed of sha256 from memory
  (~50% slower than from cache);
* sha256 of the same number of bytes from a buffer in cache;
* the ``Download`` job (fsync=False) through a ``DoJobber`` graph.

The last column, for receive + sha256, is the best ratio a client can reach
when one core both receives and hashes; benchmarks/README.md discusses the
other arrangements.

    .venv/bin/python benchmarks/bench_download_floor.py [--size-mib 512] [--runs 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _readme import write_section  # noqa: E402  (benchmarks/ is on sys.path)
from bench_download import (  # noqa: E402
    children_cpu,
    make_file,
    run_curl,
    run_ours,
    served,
)

from dojobber.contrib._hashring import body_readinto, write_all  # noqa: E402

CHUNK = 256 << 10


def _stream(session: requests.Session, url: str,
            each: Callable[[memoryview], object]) -> None:
    """GET ``url`` and hand every received chunk to ``each``."""
    buffer = memoryview(bytearray(CHUNK))
    with session.get(url, stream=True, headers={"Accept-Encoding": "identity"}) as response:
        response.raise_for_status()
        readinto = body_readinto(response)
        while n := readinto(buffer):
            each(buffer[:n])


def stages(url: str, sha256: str, dest: Path,
           size: int) -> dict[str, Callable[[], object]]:
    """The timed parts, by name (each makes its own connection)."""
    session = requests.Session()

    def receive() -> None:
        _stream(session, url, lambda chunk: None)

    def receive_write() -> None:
        with open(dest / "out", "wb", buffering=0) as f:
            _stream(session, url, lambda chunk: write_all(f.write, chunk))

    def receive_hash() -> None:
        _stream(session, url, hashlib.sha256().update)

    def hash_cached() -> None:
        digest, buffer = hashlib.sha256(), memoryview(bytearray(CHUNK))
        for _ in range(size // CHUNK):
            digest.update(buffer)

    def download() -> None:
        run_ours(url, sha256, dest, fsync=False)

    return {"curl": lambda: run_curl(url, dest), "receive": receive,
            "receive + write": receive_write, "receive + sha256": receive_hash,
            "sha256 from cache": hash_cached, "Download job": download}


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children."""
    return time.process_time() + children_cpu()


def measure(where: str, size: int, runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each stage per round, in rotating order, into ``where``."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir=where) as tmp:
        source = Path(tmp) / "big.raw"
        sha256 = make_file(source, size)
        dest = Path(tmp) / "dest"
        dest.mkdir()
        with served(source) as url:
            parts = stages(url, sha256, dest, size)
            names = list(parts)
            found: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
            for i in range(runs):
                for name in names[i % len(names):] + names[:i % len(names)]:
                    for old in dest.iterdir():
                        old.unlink()
                    cpu, start = _cpu(), time.perf_counter()
                    parts[name]()
                    found[name].append((time.perf_counter() - start, _cpu() - cpu))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where to put the file and downloads (default /dev/shm)")
    parser.add_argument("--write", metavar="README",
                        help="replace its 'download-floor' section")
    args = parser.parse_args()
    size = args.size_mib << 20
    where = args.dir or tempfile.gettempdir()
    found = measure(where, size, args.runs)
    curl = [wall for wall, _ in found["curl"]]
    rows = []
    for name, runs in found.items():
        times = [wall for wall, _ in runs]
        ratio = statistics.median(c / t for c, t in zip(curl, times, strict=True))
        rows.append(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | "
                    f"{max(times):.3f} | {statistics.median(c for _, c in runs):.3f} | "
                    f"{ratio:.2f}x |")
    lines = [
        f"`{' '.join(['benchmarks/bench_download_floor.py', *sys.argv[1:]])}` on "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: {args.size_mib} MiB from the "
        f"fake OBS download area on 127.0.0.1 into {where}, each part alone, "
        f"{args.runs} rounds in rotating order; wall seconds, and CPU seconds of the "
        "client (all its threads; the server is another process).",
        "",
        "| part | median s | min s | max s | median CPU s | curl's time / this "
        "(median per round) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Raw wall s: " + "; ".join(f"{k} {[round(t, 3) for t, _ in v]}"
                                 for k, v in found.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(Path(args.write), "download-floor", "Download: where the time goes",
                      text)


if __name__ == "__main__":
    main()
