"""Every code block of README.rst and docs/*.rst runs here, so none can rot.

Blocks are read with docutils.  Each one is listed in :data:`BLOCKS` (keyed
by file and first line) with how to run it: ``python`` blocks run in order
in one namespace per file (a reader follows the page), with the parts the
docs leave out (``Root``, ``Deploy``, an open file) filled in before;
``script`` blocks run as a script of their own; ``shell`` blocks run their
``dojobber`` / ``dask`` / ``python`` commands; ``synopsis`` blocks are
checked against ``--help``; ``output`` blocks are compared with what the
code really produces.  Remote hosts are swapped for loopback stand-ins
started here (an OBS server, libvirt's test driver, a dask scheduler, a
webhook receiver).  Only ``install`` blocks (pip / apt / make, which
``make test`` itself runs) are not executed.  A block missing from the list,
or a listed block gone from the docs, fails :func:`test_every_block_is_listed`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import pytest

docutils_core = pytest.importorskip("docutils.core")
docutils_nodes = pytest.importorskip("docutils.nodes")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.rst", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.rst"))]
BIN = Path(sys.executable).parent


@dataclass
class Block:
    kind: str  # python | script | shell | synopsis | output | install
    before: str = ""
    after: str = ""
    #: (old, new) text swaps; ``new`` may use $tmp, $home, $obs_api, ...
    replace: tuple[tuple[str, str], ...] = ()
    why: str = ""
    #: shell: expected exit code per command index (default 0)
    codes: dict[int, int] = field(default_factory=dict)
    #: stand-ins the block needs: obs, libvirt, dask, webhook, postgres
    needs: tuple[str, ...] = ()
    #: shell: the lines after the commands are Python, run after them
    python_after: bool = False


GRAPH_JOBS = "from tests.doc_jobs import Root, Deploy, Published\nfrom dojobber import DoJobber\n"
DOJOB = GRAPH_JOBS + "dojob = DoJobber()\n"

BLOCKS: dict[tuple[str, str], Block] = {
    # ---------------------------------------------------------------- README
    ("README.rst", "make demo    # creates .venv, installs dojobber, runs examples/website.py"):
        Block("install", why="make runs itself; test_examples runs the demo script"),
    ("README.rst", "from pathlib import Path"): Block(
        "python", replace=(("/tmp/motd", "$tmp/motd"),),
        after="assert printed.strip().endswith(\"{'Motd': True}\")"),
    ("README.rst", "from dojobber import DummyJob"): Block(
        "python", after="assert exit_code == 0 and 'converged' in printed"),
    ("README.rst", "from dojobber import REQUIRED"): Block(
        "python", after=(
            "dojob = DoJobber(); dojob.configure(Party)\n"
            "assert sorted(dojob.jobs.names) == ['Invite ann', 'Invite bob', 'Party']")),
    ("README.rst", "dojob.configure(Root, workers=16)"): Block(
        "python", before=GRAPH_JOBS, after="assert dojob.checknrun().success()"),
    ("README.rst", "from dojobber.cluster import open_executor"): Block(
        "python", needs=("dask",), replace=(("dask://scheduler.example.org:8786", "$dask"),),
        after="assert dojob.success()"),
    ("README.rst", "dojobber run deploy.py:Deploy --arg host=web1 --workers 4"): Block(
        "shell", codes={1: 7}),  # -n in a new process: Build would run (changes pending)
    ("README.rst", "from dojobber import DoJobber, Job, RunOutcome"):
        Block("python", replace=(("/etc/motd", "$tmp/greeting"),),
              after="assert 'Greeting: changes pending (1 would run) ' in printed\n"
                    "assert printed.endswith("
                    "'1 job would change\\nwrite ' + tmp + '/greeting\\n')"),
    ("README.rst",
     'session = dojob.converge(within="30m", backoff=dojobber.Backoff(10, 2, 300))'): Block(
        "python", before=DOJOB + "import dojobber\ndojob.configure(Root)\n",
        after="assert session.verdict.value == 'converged', session.report()\n"
              "assert issubclass(BadPassword, dojobber.GiveUp)"),
    ("README.rst",
     "dojobber run site.py:Published --until-converged --within 30m --backoff 10s..5m"): Block(
        "shell", why="the agent line only shows its options: it runs until stopped",
        replace=(("--every 15m --splay 2m", "--every 15m --splay 2m --help"),)),
    ("README.rst", "dojobber post site.py:Published --arg host=web03 --priority 5"): Block(
        "shell", replace=(("--concurrency 4", "--concurrency 4 --once"),)),
    # ------------------------------------------------------------ board.rst
    ("docs/board.rst", "dojobber post site.py:Published --arg site=/srv/www --priority 5"):
        Block("shell", replace=(("runs until stopped", ""),
                                ("--concurrency 4", "--concurrency 4 --once"),
                                ("board 12", "board 1"),
                                ("dojobber cancel 12", "dojobber post site.py:Published"
                                 " --arg site=/srv/other\ndojobber cancel 2"))),
    ("docs/board.rst", "from dojobber.board import open_board"): Block(
        "python", replace=(("/var/lib/converge", "$tmp/converge"),),
        before="os.makedirs(os.path.join(tmp, 'converge'), exist_ok=True)\n",
        after="assert board.get(posted.id).state == 'done', board.get(posted.id)"),
    ("docs/board.rst",
     "export DOJOBBER_BOARD=postgresql://dojobber:PASSWORD@db.example/dojobber"): Block(
        "shell", needs=("postgres",),
        replace=(("dojobber worker --concurrency 4",
                  "dojobber post site.py:Published --arg site=/srv/www --board $pg\n"
                  "dojobber worker --concurrency 4 --once --board $pg --records $pg\n"
                  "dojobber board 1 --board $pg\ndojobber show last --records $pg"),)),
    ("docs/board.rst", "# on db, once"): Block(
        "install", why="a fleet's setup on other machines (createuser, pip, systemd, cron);"
        " tests/test_board_fleet.py runs its post and worker commands on a real server"),
    # -------------------------------------------------------- check_mode.rst
    ("docs/check_mode.rst", "import os"): Block(
        "python", after="assert 'Site: changes pending (1 would run, 1 not checked) in ' in printed"
                        "\nassert '; 1 job would change' in printed"
                        "\nassert 'would: write ' in printed"),
    ("docs/check_mode.rst", "dojobber run deploy.py:Deploy -n"): Block(
        "shell", codes={0: 7, 1: 7}),
    # -------------------------------------------------------------- cli.rst
    ("docs/cli.rst", 'pip install "dojobber[cli]"'): Block("install", why="pip"),
    ("docs/cli.rst", "dojobber run deploy.py:Deploy --arg host=web1 --arg port=22 --workers 4"):
        Block("shell"),
    ("docs/cli.rst", "import dojobber"): Block(
        "script", replace=(('    """Deploy the web site."""\n    ...\n',
                            '    """Deploy the web site."""\n'
                            "    def Check(self, *args, **kwargs): pass\n"),)),
    ("docs/cli.rst", "dojobber list deploy.py:Deploy"): Block("shell"),
    ("docs/cli.rst", "dojobber history [ROOT] [--limit 20] [--json]"): Block("synopsis"),
    ("docs/cli.rst", "dojobber show RUN [JOB] [--status failed] [--all] [--json]"):
        Block("synopsis"),
    ("docs/cli.rst", "dojobber graph deploy.py:Deploy -o deploy.svg"): Block("shell"),
    # ----------------------------------------------------------- graphs.rst
    ("docs/graphs.rst", "dojob = DoJobber()"): Block(
        "python", before=GRAPH_JOBS,
        after="assert __import__('pathlib').Path('graph.png').read_bytes()[:4] == b'\\x89PNG'\n"
              "assert 'flowchart' in __import__('pathlib').Path('graph.mmd').read_text()"),
    ("docs/graphs.rst", "from dojobber.render import render, to_dot, to_mermaid"): Block(
        "python", after="assert png.startswith(b'\\x89PNG') and b'<svg' in svg"),
    ("docs/graphs.rst", "pip install 'dojobber[graph]'"): Block("install", why="pip / apt"),
    ("docs/graphs.rst", "from dojobber.render import GraphvizUnavailableError"): Block(
        "python",
        after="assert __import__('pathlib').Path('graph.png').read_bytes()[:4] == b'\\x89PNG'"),
    ("docs/graphs.rst", 'dojob.write_graph(out, "svg", focus="failures", max_nodes=200)'):
        Block("python", before="out = open('focus.svg', 'wb')\n", after="out.close()"),
    # ---------------------------------------------------------- libvirt.rst
    ("docs/libvirt.rst", 'pip install "dojobber[libvirt]"     # libvirt-python; builds against'
                         " libvirt-dev + pkg-config"): Block("install", why="pip"),
    ("docs/libvirt.rst", "from dojobber import DoJobber"): Block(
        "python", needs=("libvirt",),
        replace=(('image="/srv/images/tw.qcow2",', 'image="$image", uri="test:///default",'),
                 ('domain=Vm)', 'domain=Vm, uri="test:///default")')),
        after="assert dj.success()"),
    # -------------------------------------------------------------- obs.rst
    ("docs/obs.rst", "from dojobber import DoJobber"): Block(
        "python", needs=("obs",),
        replace=(('package="openSUSE-Leap-15.6-JeOS")',
                  'package="openSUSE-Leap-15.6-JeOS", api_url="$obs_api",'
                  ' download_url="$obs_download")'),),
        after="assert dj.success() and printed.strip().startswith(home)"),
    ("docs/obs.rst", "from dojobber.contrib.obs import Credentials"): Block(
        "python", before="import os\nos.environ['OBS_PASSWORD'] = 'secret'\n",
        replace=(('"Find", ...,', '"Find", project="home:me", package="thing",'),)),
    # --------------------------------------------------------- converge.rst
    ("docs/converge.rst", "from datetime import timedelta"): Block(
        "python", before=GRAPH_JOBS,
        after="assert session.verdict.value == 'converged', session.report()"),
    ("docs/converge.rst", "class BadCredentials(dojobber.GiveUp, PermissionError):"): Block(
        "python", before="import dojobber\n",
        after="assert issubclass(BadCredentials, PermissionError)"),
    ("docs/converge.rst",
     "dojobber run FILE:Root --until-converged [--max-rounds N] [--within DURATION]"):
        Block("synopsis"),
    ("docs/converge.rst",
     "dojobber run FILE:Root --every DURATION [--splay DURATION] [--until-converged ...]"):
        Block("synopsis"),
    ("docs/converge.rst", "class Deploy(Job):"): Block(
        "python", before="from dojobber import Job\n",
        after="assert Deploy.TIMEOUT == 300 and DoJobber().configure(Deploy) is None"),
    # --------------------------------------------------------- parallel.rst
    ("docs/parallel.rst", "dojob.configure(Root, workers=8)"): Block(
        "python", before=DOJOB, after="assert dojob.checknrun().success()"),
    ("docs/parallel.rst", "from concurrent.futures import ProcessPoolExecutor"): Block(
        "python", replace=(("ProcessPoolExecutor(4)", "ProcessPoolExecutor(2)"),),
        after="assert dojob.success()"),
    ("docs/parallel.rst", "from distributed import Client, LocalCluster"): Block(
        "python", replace=(("n_workers=4", "n_workers=1, dashboard_address='127.0.0.1:0'"),),
        after="assert dojob.success()"),
    ("docs/parallel.rst", "dask scheduler --host 10.0.0.5            # on one machine"): Block(
        "shell", replace=(("10.0.0.5:8786", "127.0.0.1:$dask_port"),
                          ("--host 10.0.0.5", "--host 127.0.0.1 --port $dask_port"
                           " --dashboard-address :0"),
                 ("executor=client.get_executor(pure=False))",
                  "executor=client.get_executor(pure=False))\n"
                  "    assert dojob.checknrun().success()")), python_after=True),
    ("docs/parallel.rst", "from dojobber import DoJobber"): Block(
        "script", replace=(("from deploy import Root", "from tests.doc_jobs import Root"),
                           ("dask-local:4", "dask-local:1")),
        after="assert dojob.success()"),
    # ---------------------------------------------------------- records.rst
    ("docs/records.rst", "from dojobber import DoJobber"): Block(
        "python", before=GRAPH_JOBS,
        after="assert os.path.isfile(os.path.join(home, 'deploy-records.sqlite3'))\n"
              "assert not os.path.exists('~')"),
    ("docs/records.rst",
     'dojob.configure(Deploy, records="postgresql://dojobber@db.example/dojobber")'): Block(
        "python", needs=("postgres",), before=DOJOB,
        replace=(("postgresql://dojobber@db.example/dojobber", "$pg"),),
        after=("dojob.set_args(host='web1')\nresult = dojob.checknrun()\n"
               "from dojobber.records import open_store\nstore = open_store(pg)\n"
               "assert store.run('last').root == 'Deploy'\nstore.close()")),
    ("docs/records.rst", "import logging"): Block(
        "python", after="dojob.checknrun()\nassert records.run_id"),
    ("docs/records.rst", "from dojobber.records import RecordStore"): Block(
        "python", after="assert printed"),
    ("docs/records.rst", "with RecordStore(\"runs.sqlite3\") as store, store.write() as conn:"):
        Block("python"),
    ("docs/records.rst", "from dojobber import Listener"): Block(
        "python", after="import contextlib, io\nbuf = io.StringIO()\n"
                        "with contextlib.redirect_stdout(buf):\n"
                        "    dojob.configure(Deploy, listeners=[Tell()])\n"
                        "    dojob.checknrun()\n"
                        "assert 'Deploy: converged' in buf.getvalue(), buf.getvalue()"),
    ("docs/records.rst", "from dojobber.notify import WebhookNotifier"): Block(
        "python", needs=("webhook",),
        replace=(("https://chat.example.org/hooks/T0K3N", "$hook"),),
        after="dojob.checknrun()\nimport time\nfor _ in range(200):\n"
              "    if hook_server.received: break\n    time.sleep(0.05)\n"
              "assert hook_server.received, 'no webhook POST'"),
    ("docs/records.rst", '{"event": "run_finished", "root": "Deploy", "target": "Deploy",'):
        Block("output", why="the webhook body the block before sent"),
    ("docs/records.rst",
     'dojob.configure(Deploy, lock="/run/lock/deploy.lock", lock_timeout=60)'): Block(
        "python", replace=(("/run/lock", "$tmp"), ("lock_timeout=60", "lock_timeout=0.2")),
        after="from dojobber.lock import RunLock, LockHeldError\n"
              "with RunLock(os.path.join(tmp, 'deploy.lock'), root='Deploy'):\n"
              "    try:\n        dojob.checknrun()\n"
              "    except LockHeldError as err:\n        lock_message = str(err)\n"),
    ("docs/records.rst",
     "another run holds the lock /run/lock/deploy.lock after waiting 60s: pid 4242"): Block(
        "output", why="the LockHeldError the block before raised"),
    # ------------------------------------------------------- prepare_ssh.rst
    ("docs/prepare_ssh.rst", 'pip install "dojobber[ssh,libvirt]"'): Block("install", why="pip"),
    ("docs/prepare_ssh.rst",
     "from dojobber.contrib.libvirt import CreateDomain, WaitForAddress"): Block(
        "python", replace=(("/var/lib/libvirt/images", "$tmp"),),
        after="from dojobber import DoJobber\nDoJobber().configure(Key)"),
    ("docs/prepare_ssh.rst", "Key = AuthorizeSSHKey.variant("): Block(
        "python", before="import os\nos.environ['VM1_ROOT_PASSWORD'] = 'secret'\n",
        after="DoJobber().configure(Key)"),
    # -------------------------------------------------------------- ssh.rst
    ("docs/ssh.rst", 'pip install "dojobber[ssh]"'): Block("install", why="pip"),
    ("docs/ssh.rst", "from dojobber.contrib.ssh import CopyFiles, RunCommands"): Block(
        "python", replace=(("192.0.2.10", "127.0.0.1"),),
        after="from dojobber import DoJobber\nDoJobber().configure(Conf)"),
    # --------------------------------------------------------- vm_from_obs
    ("docs/vm_from_obs.rst", "python3 -m venv ~/dojobber-venv"): Block(
        # The venv and pip lines are installs; the script's command runs
        # with --help, which checks that each option shown exists.
        "shell", replace=(("~/dojobber-venv/bin/python examples/vm_from_obs.py",
                           "python $root/examples/vm_from_obs.py --help"),)),
    ("docs/vm_from_obs.rst", "make test-vm"): Block(
        "install", why="make (a real guest for minutes; `make test-vm` runs it)"),
    # ------------------------------------------------------------- web.rst
    # `dojobber serve` runs until stopped: its blocks are checked against
    # --help; tests/test_web_*.py start it for real.
    ("README.rst", "dojobber serve --records runs.sqlite3"): Block("synopsis"),
    ("docs/web.rst", "pip install 'dojobber[web]'"): Block("install", why="pip"),
    ("docs/web.rst", "pip install 'dojobber[web,postgres]'"): Block(
        "install", why="pip, then a serve that runs until stopped (tests/test_web_api.py "
        "serves postgresql:// records)"),
    ("docs/web.rst", "dojobber serve"): Block("synopsis"),
    ("docs/web.rst", "dojobber serve [--records PATH] [--board PATH] [--host 127.0.0.1]"
                     " [--port 8642]"): Block("synopsis"),
    ("docs/web.rst", "import json"): Block(
        "python",
        replace=(('"http://127.0.0.1:8642/api/runs', 'web_url + "/api/runs'),),
        before=("from tests.fakes.web import record_runs, web_server\n"
                "record_runs(os.path.join(tmp, 'web.sqlite3'))\n"
                "served = web_server(records=os.path.join(tmp, 'web.sqlite3'),"
                " board=os.path.join(tmp, 'web-board.sqlite3'))\n"
                "web_url = served.__enter__()\n"),
        after=("served.__exit__(None, None, None)\n"
               "assert printed.split()[1:] == ['Fetch', 'converged', 'converged'], printed")),
    ("docs/web.rst", "from dojobber.web import WebOptions, serve"): Block(
        # serve() runs until Ctrl-C: the options are built and checked instead.
        "python", replace=(("serve(WebOptions(", "options = (WebOptions("),),
        after="options.check()\nassert options.read_only and options.host == '127.0.0.1'"),
}


# ----------------------------------------------------------------------
def literal_blocks(doc: str) -> list[tuple[int, str]]:
    tree = docutils_core.publish_doctree(
        (ROOT / doc).read_text(),
        settings_overrides={"report_level": 5, "halt_level": 5, "file_insertion_enabled": False},
    )
    return [(node.line or 0, node.astext()) for node in tree.findall(docutils_nodes.literal_block)]


def blocks_of(doc: str) -> list[tuple[int, str, Block]]:
    found = []
    for line, text in literal_blocks(doc):
        key = (doc, text.splitlines()[0].strip())
        if key in BLOCKS:
            found.append((line, text, BLOCKS[key]))
    return found


def test_every_block_is_listed() -> None:
    seen = set()
    unlisted = []
    for doc in DOCS:
        for line, text in literal_blocks(doc):
            key = (doc, text.splitlines()[0].strip())
            seen.add(key)
            if key not in BLOCKS:
                unlisted.append(f"{doc}:{line}: {key[1]!r}")
    assert not unlisted, "code blocks the docs test does not run; add them to BLOCKS: " + \
        "; ".join(unlisted)
    stale = sorted(f"{doc}: {first!r}" for doc, first in set(BLOCKS) - seen)
    assert not stale, f"BLOCKS lists blocks no longer in the docs: {stale}"
    for key, block in BLOCKS.items():
        assert block.kind in {"python", "script", "shell", "synopsis", "output", "install"}, key
        if block.kind == "install":
            assert block.why, key


# ----------------------------------------------------------------------
# Stand-ins
@contextlib.contextmanager
def stand_ins(needs: set[str], tmp: Path) -> Iterator[dict[str, Any]]:
    values: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if "obs" in needs:
            from tests.fakes.obs import FakeObs

            obs = stack.enter_context(FakeObs(tmp / "obs"))
            obs.add_build("devel:kanku:images", "openSUSE-Leap-15.6-JeOS", files={
                "openSUSE-Leap-15.6-JeOS.x86_64-15.6.0-Build1.1.qcow2": b"leap image bytes",
            })
            values.update(obs_api=obs.api_url, obs_download=obs.download_url)
        if "libvirt" in needs:
            pytest.importorskip("libvirt")
            image = tmp / "images" / "tw.qcow2"
            image.parent.mkdir()
            qemu_img = shutil.which("qemu-img")
            assert qemu_img, "qemu-img is missing: run scripts/system-deps.sh (qemu-utils)"
            subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(image), "1G"],
                           check=True)
            values["image"] = str(image)
        if "dask" in needs:
            distributed = pytest.importorskip("distributed")
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                host="127.0.0.1",
                # its HTTP server on loopback at a free port (None: *:8787)
                dashboard_address="127.0.0.1:0"))
            values["dask"] = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
        if "postgres" in needs:
            from tests.fakes.postgres import PostgresServer, pg_bin_dir

            if pg_bin_dir() is None:
                pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
            server = stack.enter_context(PostgresServer())
            values["pg"] = server.create_database("docs")
        if "webhook" in needs:
            from tests.fakes.webhook import webhook_server

            hook = stack.enter_context(webhook_server())
            values["hook"] = hook.url
            values["hook_server"] = hook
        yield values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A working directory and home of its own; nothing touches the user's."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "HOME": str(home), "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "100", "NO_COLOR": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DOJOBBER_RECORDS", "DOJOBBER_BOARD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(work)
    # Files the shell blocks name: the reader's own scripts.
    (work / "deploy.py").write_text("from tests.doc_jobs import Deploy, Root  # noqa: F401\n")
    (work / "site.py").write_text("from tests.doc_jobs import Published  # noqa: F401\n")
    return {"tmp": str(tmp_path), "home": str(home), "work": str(work), "root": str(ROOT)}


def filled(block: Block, text: str, values: dict[str, Any]) -> str:
    for old, new in block.replace:
        assert old in text, f"replacement {old!r} no longer matches the block"
        text = text.replace(old, Template(new).substitute(values))
    return text


# ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_code_blocks_run(doc: str, sandbox: dict[str, str]) -> None:
    tmp = Path(sandbox["tmp"])
    found = blocks_of(doc)
    needs = {need for _, _, block in found for need in block.needs}
    if any("dask " in text or "dask-local" in text for _, text, _ in found):
        pytest.importorskip("distributed")
    with stand_ins(needs, tmp) as values:
        values.update(sandbox, dask_port=str(free_port()))
        namespace: dict[str, Any] = {"__name__": "__docs__", "os": os, **values}
        for line, text, block in found:
            where = f"{doc}:{line}"
            code = filled(block, text, values)
            if block.kind == "python":
                run_python(where, block, code, namespace)
            elif block.kind == "script":
                run_script(where, block, code, Path(sandbox["work"]))
            elif block.kind == "shell":
                run_shell(where, block, code, namespace)
            elif block.kind == "synopsis":
                check_synopsis(where, code)
            elif block.kind == "output":
                check_output(where, code, namespace)


def run_python(where: str, block: Block, code: str, namespace: dict[str, Any]) -> None:
    out = io.StringIO()
    namespace["exit_code"] = None
    with contextlib.redirect_stdout(out):
        exec(compile(block.before, f"{where} (before)", "exec"), namespace)
        try:
            exec(compile(code, where, "exec"), namespace)
        except SystemExit as stop:
            namespace["exit_code"] = stop.code
    namespace["printed"] = out.getvalue()
    if block.after:
        exec(compile(block.after, f"{where} (after)", "exec"), namespace)


def run_script(where: str, block: Block, code: str, work: Path) -> None:
    """The block as a script of its own (``block.after`` goes under its
    ``__main__`` guard)."""
    script = work / f"snippet_{re.sub(r'[^a-z0-9]+', '_', where.lower())}.py"
    after = "".join(f"    {line}\n" for line in block.after.splitlines())
    script.write_text(f"{code}\n{after}")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stderr[-3000:]}"


def commands(code: str) -> Iterator[list[str]]:
    """The commands of a shell block: comments dropped, ``\\`` lines joined,
    Python lines (a ``with`` block after the commands) left out."""
    joined = code.replace("\\\n", " ")
    for raw in joined.splitlines():
        line = raw.split("  #", 1)[0].strip()
        if line and re.match(r"(dojobber|dask|python) ", line):
            yield shlex.split(line)


def python_tail(code: str) -> str:
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if line and not re.match(r"(dojobber|dask|python) ", line) and not line.startswith(" "):
            return "\n".join(lines[i:])
    return ""


def run_shell(where: str, block: Block, code: str, namespace: dict[str, Any]) -> None:
    background: list[subprocess.Popen[bytes]] = []
    try:
        for index, argv in enumerate(commands(code)):
            daemon = argv[0] == "dask"  # dask scheduler / worker run until stopped
            program = sys.executable if argv[0] == "python" else str(BIN / argv[0])
            argv = [program, *argv[1:]]
            if daemon:
                background.append(subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_for_port(int(namespace["dask_port"]))
                continue
            done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
            expected = block.codes.get(index, 0)
            assert done.returncode == expected, (
                f"{where}: {shlex.join(argv[1:])} exited {done.returncode}\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
            if "--help" in argv:  # a command shown with real values: its options exist
                for option in re.findall(r"(?<= )--[a-z][a-z-]*", " ".join(argv)):
                    assert option in done.stdout, f"{where}: no option {option}"
        tail = python_tail(code) if block.python_after else ""
        if tail:
            exec(compile(GRAPH_JOBS + "from distributed import Client\ndojob = DoJobber()\n"
                         + tail + "\n" + block.after, where, "exec"), namespace)
    finally:
        for proc in reversed(background):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def check_synopsis(where: str, code: str) -> None:
    words = shlex.split(code)
    done = subprocess.run([str(BIN / "dojobber"), words[1], "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"{where}: {done.stderr}"
    for option in re.findall(r"--[a-z][a-z-]*", code):
        assert option in done.stdout, f"{where}: {option} is not an option of {words[1]}"


def check_output(where: str, code: str, namespace: dict[str, Any]) -> None:
    if code.lstrip().startswith("{"):
        sample = json.loads(code)
        hook = namespace["hook_server"]
        sent = hook.received[-1]
        assert set(sample) == set(sent), f"{where}: the sample's keys differ from a real POST"
        for key in ("counts", "failed"):
            assert isinstance(sent[key], type(sample[key])), (where, key)
        return
    message = namespace.get("lock_message")
    assert message, f"{where}: no LockHeldError was seen"
    shown = " ".join(code.split())
    pattern = re.escape(shown)
    for value in (r"/run/lock", r"60s", r"4242", r"build1", r"2026\-11\-23\ 09:12:01"):
        pattern = pattern.replace(value, ".+?")
    assert re.fullmatch(pattern, " ".join(message.split())), (where, message)
