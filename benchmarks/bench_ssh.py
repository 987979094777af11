"""SSH connection reuse: N RunCommands jobs on one host, pooled vs fresh.

Starts a real sshd on 127.0.0.1 (tests/fakes/sshd.py) and times, alternating,

* ``pooled``: one ``DoJobber`` run of N ``RunCommands`` jobs (``true``) on the
  same host: one connection, reused by every job of the run;
* ``fresh``: N runs of one such job each: a new connection per job;
* ``openssh``: ``ssh host true`` N times with the OpenSSH client, for scale;
* ``raw``: N bare paramiko ``exec_command("true")`` on one open connection
  (a reference: sshd starting a session and a shell for each command).

Reports medians and the fresh/pooled ratio; ``--write benchmarks/README.md``
replaces (or appends) its ``## SSH connection reuse`` section.

    .venv/bin/python benchmarks/bench_ssh.py [--jobs 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paramiko  # noqa: E402
from _readme import write_section  # noqa: E402  (benchmarks/ is on sys.path)

from dojobber import DoJobber, Job  # noqa: E402
from dojobber.contrib.ssh import RunCommands  # noqa: E402
from tests.fakes.sshd import Sshd  # noqa: E402


def timed_run(root: type[Job]) -> float:
    dj = DoJobber()
    dj.configure(root, default_tries=1)
    start = time.perf_counter()
    dj.checknrun()
    took = time.perf_counter() - start
    assert dj.success(), dj.nodeexceptions
    return took


def raw_execs(sshd: Sshd, known: Path, n: int) -> float:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.connect(sshd.host, sshd.port, sshd.username, key_filename=str(sshd.client_key),
                   allow_agent=False, look_for_keys=False)
    try:
        transport = client.get_transport()
        assert transport is not None
        start = time.perf_counter()
        for _ in range(n):
            chan = transport.open_session()
            chan.exec_command("true")
            assert chan.recv_exit_status() == 0
            chan.close()
        return time.perf_counter() - start
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", metavar="README",
                        help="replace its '## SSH connection reuse' section")
    args = parser.parse_args()
    n = args.jobs
    results: dict[str, list[float]] = {"pooled": [], "fresh": [], "openssh": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp, Sshd(Path(tmp)) as sshd:
        known = Path(tmp) / "known_hosts"
        known.write_text(sshd.known_hosts_line())
        opts: dict[str, Any] = dict(
            host=sshd.host, port=sshd.port, username=sshd.username,
            key_filename=str(sshd.client_key), allow_agent=False, look_for_keys=False,
            known_hosts=str(known), connect_retry_for=0,
        )
        jobs = [RunCommands.variant(f"j{i}", **opts, commands=["true"]) for i in range(n)]
        everything = type("All", (Job,), {"DEPS": jobs, "Check": lambda self: None})
        ssh = ["ssh", "-q", "-i", str(sshd.client_key), "-p", str(sshd.port),
               "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes",
               "-o", "IdentitiesOnly=yes", f"{sshd.username}@{sshd.host}", "true"]
        for i in range(args.runs):
            order = ["pooled", "fresh", "openssh", "raw"]
            for kind in order if i % 2 == 0 else order[::-1]:
                if kind == "pooled":
                    results[kind].append(timed_run(everything))
                elif kind == "fresh":
                    results[kind].append(sum(timed_run(job) for job in jobs))
                elif kind == "openssh":
                    start = time.perf_counter()
                    for _ in range(n):
                        subprocess.run(ssh, check=True, timeout=30)
                    results[kind].append(time.perf_counter() - start)
                else:
                    results[kind].append(raw_execs(sshd, known, n))
    med = {kind: statistics.median(times) for kind, times in results.items()}
    lines = [
        "## SSH connection reuse",
        "",
        f"`{' '.join(['benchmarks/bench_ssh.py', *sys.argv[1:]])}` on "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores (shared), {time.strftime('%Y-%m-%d')}: {n} `RunCommands` "
        f"jobs running `true` against OpenSSH sshd on 127.0.0.1, median of {args.runs} "
        "alternating runs.",
        "",
        "| way | median s | ms per job |",
        "|---|---|---|",
        f"| one run, connection reused (pooled) | {med['pooled']:.2f} | "
        f"{1000 * med['pooled'] / n:.0f} |",
        f"| one run per job (a connection each) | {med['fresh']:.2f} | "
        f"{1000 * med['fresh'] / n:.0f} |",
        f"| OpenSSH `ssh host true` per job | {med['openssh']:.2f} | "
        f"{1000 * med['openssh'] / n:.0f} |",
        f"| bare paramiko exec loop on one open connection | {med['raw']:.2f} | "
        f"{1000 * med['raw'] / n:.0f} |",
        "",
        f"Reusing the connection is **{med['fresh'] / med['pooled']:.1f}x** faster than a "
        "connection per job.  What remains per job is about what a bare paramiko exec "
        "loop on one open connection costs: sshd starting a session and a shell for each "
        "command.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print({kind: [round(t, 2) for t in times] for kind, times in results.items()})
    if args.write:
        body = text.split("\n", 1)[1]  # the lines under "## SSH connection reuse"
        write_section(Path(args.write), "ssh", "SSH connection reuse", body)


if __name__ == "__main__":
    main()
