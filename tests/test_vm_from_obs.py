"""The OBS -> download -> libvirt -> address -> SSH example, end to end.

Everything runs on this machine: the fake OBS on loopback HTTP, libvirt's
``test:///default`` driver and a real sshd on 127.0.0.1.  The address the
test driver makes up for the guest is recorded but never connected to: the
example's ``ssh_host`` option (an explicit ``host``) points SSH at the
loopback sshd.
"""

from __future__ import annotations

import gc
import importlib.util
import pathlib
import subprocess
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")
pytest.importorskip("paramiko")
pytest.importorskip("requests")

from dojobber import JobStatus  # noqa: E402
from tests.fakes.obs import FakeObs  # noqa: E402
from tests.fakes.sshd import Sshd, sshd_available  # noqa: E402

pytestmark = pytest.mark.skipif(not sshd_available(), reason="needs openssh-server")

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "vm_from_obs.py"
IMAGE = "leap.x86_64-15.6-Build1.1.qcow2"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vm_from_obs", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[tuple[FakeObs, Sshd, Any]]:
    conn = libvirt.open("test:///default")
    with FakeObs(tmp_path / "obs") as obs, Sshd(tmp_path / "sshd") as sshd:
        yield obs, sshd, conn
    gc.collect()
    conn.close()


@pytest.mark.slow
def test_example_converges_in_one_run_and_a_rerun_does_nothing(
    world: tuple[FakeObs, Sshd, Any], tmp_path: pathlib.Path
) -> None:
    obs, sshd, conn = world
    made = tmp_path / "made.qcow2"  # a real qcow2 (qemu-img, from scripts/system-deps.sh)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(made), "4G"], check=True)
    image = made.read_bytes()
    obs.add_build("devel:kanku:images", "leap", files={IMAGE: image})
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line())
    marker = tmp_path / "provisioned"
    images = tmp_path / "images"
    example = load_example()
    root = example.build(
        project="devel:kanku:images", package="leap", images=str(images),
        commands=[f"echo provisioned by $USER_AGENT_NAME > {marker}"],
        check=f"test -s {marker}",
        api_url=obs.api_url, download_url=obs.download_url,
        uri="test:///default", name="kanku-test", memory="1G",
        ssh_host=sshd.host, ssh_port=sshd.port, username=sshd.username,
        key=str(sshd.client_key), known_hosts=str(known), host_key_policy="verify",
        ssh_options={"allow_agent": False, "look_for_keys": False, "connect_retry_for": 0,
                     "environment": {"USER_AGENT_NAME": "dojobber"}},
    )

    first = example.converge(root, verbose=False, tries=1, retry_delay=0)
    assert first.success(), first.nodeexceptions
    statuses = {name: res.status for name, res in first.results.items()}
    assert statuses == {
        "Find image": JobStatus.OK,
        "Download image": JobStatus.CHANGED,
        "Seed": JobStatus.CHANGED,
        "Create domain": JobStatus.CHANGED,
        "Wait for address": JobStatus.OK,
        "Authorize key": JobStatus.OK,  # the loopback sshd takes the key already
        "Provision": JobStatus.CHANGED,
    }
    assert (images / IMAGE).read_bytes() == image
    dom = conn.lookupByName("kanku-test")
    assert dom.isActive() and dom.maxMemory() == 1 << 20
    assert first.noderesults["Create domain"]["disk"] == str(images / "kanku-test-overlay.qcow2")
    seed = str(images / "kanku-test-seed.iso")
    assert first.noderesults["Seed"]["path"] == seed
    assert f"<source file='{seed}'/>" in dom.XMLDesc(0)
    assert marker.read_text() == "provisioned by dojobber\n"
    assert first.noderesults["Provision"]["host"] == "127.0.0.1"
    assert first.noderesults["Wait for address"]["ip"] != "127.0.0.1"
    downloads = len(obs.requests_for(obs_path(IMAGE), "GET"))
    assert downloads >= 1

    second = example.converge(root, verbose=False, tries=1, retry_delay=0)
    assert {res.status for res in second.results.values()} == {JobStatus.OK}
    assert len(obs.requests_for(obs_path(IMAGE), "GET")) == downloads
    assert marker.read_text() == "provisioned by dojobber\n"


def obs_path(filename: str) -> str:
    return f"repositories/devel:/kanku:/images/images/{filename}"


def test_example_draws_its_graph(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("graphviz")
    example = load_example()
    root = example.build(project="p", package="q", images=str(tmp_path), commands=["true"])
    out = tmp_path / "vm.svg"
    example.draw(root, str(out))
    svg = out.read_text()
    for name in ("Find image", "Download image", "Seed", "Create domain",
                 "Wait for address", "Authorize key", "Provision"):
        assert name in svg
