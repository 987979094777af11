"""``make test-vm``: examples/vm_from_obs.py against a real guest.

Not part of ``make test`` (pytest does not collect this file by itself; the
target names it).  Needs root, the packages of scripts/vm-deps.sh, and
minutes: under TCG the guest boots in about two.

1. the guest image: scripts/build-test-image.sh builds (once per recipe) a
   small bootable Debian qcow2 with cloud-init, openssh-server and a serial
   getty, and a random root password in a 0600 file next to it;
2. the fake OBS of the tests serves it on 127.0.0.1, with its ``.sha256``;
3. libvirtd (and virtlogd) are started when ``qemu:///system`` does not answer;
4. the example graph converges with ``--prepare cloud-init``: find, download
   and verify, seed, define and boot (TCG here; ``DOJOBBER_TEST_VM_DOMAIN_TYPE``
   = ``kvm`` or ``auto`` elsewhere), wait for SSH through the port forward on
   127.0.0.1, authorize the key, provision; host keys are accept-new into the
   test's own known_hosts;
5. a rerun changes nothing (no download, no definition, no command);
6. the key is removed on the guest and the ``--prepare console`` graph puts
   it back through the serial console (libvirt's console stream); its rerun
   changes nothing either;
7. RemoveDomain removes the domain and its disk; nothing of it is left.

The guest is reached only through 127.0.0.1 (user-mode networking with a
port forward); nothing here connects to any other address.  Stage and
per-job times are printed and written to ``<cache>/last-run.json``
(benchmarks/README.md quotes them), the jobs' DEBUG log (console dialogue
included, the password as ``***``) to ``<cache>/last-run.log``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from dojobber import DoJobber, JobStatus  # noqa: E402
from dojobber.contrib.libvirt import RemoveDomain  # noqa: E402
from tests.fakes.obs import FakeObs  # noqa: E402
from tests.fakes.sshd import free_port, keygen  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
URI = "qemu:///system"
NAME = "dojobber-test-vm"
PROJECT, PACKAGE = "devel:dojobber:test", "debian-test"
IMAGE = "debian-test.x86_64-12-Build1.1.qcow2"
CACHE = pathlib.Path(os.environ.get("DOJOBBER_TEST_VM_CACHE")
                     or pathlib.Path.home() / ".cache" / "dojobber-test-vm")
DOMAIN_TYPE = os.environ.get("DOJOBBER_TEST_VM_DOMAIN_TYPE", "qemu")
times: dict[str, float] = {}
per_job: dict[str, dict[str, float]] = {}


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    times[name] = round(time.monotonic() - start, 2)
    print(f"\n[test-vm] {name}: {times[name]:.2f} s", flush=True)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vm_from_obs", REPO / "examples" /
                                                  "vm_from_obs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_libvirtd() -> None:
    """Connect to qemu:///system; start virtlogd and libvirtd when it does not answer."""
    with contextlib.suppress(libvirt.libvirtError):
        libvirt.open(URI).close()
        return
    if os.geteuid() != 0:
        pytest.fail("qemu:///system does not answer; start libvirtd (needs root)")
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "start", "virtlogd", "libvirtd"], check=True, timeout=60)
    else:
        for daemon in ("virtlogd", "libvirtd"):
            if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode:
                subprocess.run([daemon, "-d"], check=True, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            libvirt.open(URI).close()
            return
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def build_image() -> tuple[pathlib.Path, str]:
    done = subprocess.run(["sh", str(REPO / "scripts" / "build-test-image.sh"), str(CACHE)],
                          check=True, capture_output=True, text=True, timeout=3600)
    image = pathlib.Path(done.stdout.strip().splitlines()[-1])
    password = (CACHE / "root-password").read_text().strip()
    return image, password


def statuses(dj: DoJobber) -> dict[str, JobStatus]:
    return {name: res.status for name, res in dj.results.items()}


def run_graph(example: ModuleType, root: Any, label: str) -> DoJobber:
    dj: DoJobber = example.converge(root, verbose=False, tries=1, retry_delay=0)
    assert dj.result is not None
    jobs = {name: round(res.duration, 2) for name, res in dj.result.jobs.items()}
    per_job[label] = jobs
    print(f"\n[test-vm] {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in jobs.items()),
          flush=True)
    assert dj.success(), dj.nodeexceptions
    return dj


@pytest.fixture
def workdir() -> Iterator[pathlib.Path]:
    # The hypervisor (user libvirt-qemu) reads the image, disk and seed here.
    path = pathlib.Path(tempfile.mkdtemp(prefix="dojobber-test-vm-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def debug_log() -> Iterator[pathlib.Path]:
    """The jobs' DEBUG log (console dialogue included, password scrubbed) in
    ``<cache>/last-run.log``, to read when a stage fails."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "last-run.log"
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logger = logging.getLogger("dojobber")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield path
    logger.removeHandler(handler)
    logger.setLevel(old)
    handler.close()


def test_vm_from_obs_on_a_real_guest(workdir: pathlib.Path) -> None:
    with stage("image build (cached when the recipe is unchanged)"):
        image, password = build_image()
    ensure_libvirtd()
    conn = libvirt.open(URI)
    with contextlib.suppress(libvirt.libvirtError):  # a leftover of an aborted run
        old = conn.lookupByName(NAME)
        pytest.fail(f"domain {NAME} exists already ({old.UUIDString()}); remove it first: "
                    f"virsh -c {URI} destroy {NAME}; virsh -c {URI} undefine {NAME}")
    key = keygen(workdir / "id_ed25519")
    images = workdir / "images"
    images.mkdir(mode=0o755)
    known = workdir / "known_hosts"
    port = free_port()
    marker = "/root/provisioned-by-dojobber"
    example = load_example()
    settings: dict[str, Any] = dict(
        project=PROJECT, package=PACKAGE, images=str(images), uri=URI, name=NAME,
        memory="1G", vcpu=1, domain_type=None if DOMAIN_TYPE == "auto" else DOMAIN_TYPE,
        forward_ssh=port, address_timeout=900, prepare_timeout=900, key=str(key),
        known_hosts=str(known), host_key_policy="accept-new",
        commands=[f"echo provisioned > {marker}", "systemctl is-system-running --wait || true"],
        check=f"test -s {marker}",
        # An emulated guest on a busy host is slow to send SSH's banner.
        ssh_options={"connect_timeout": 120.0, "connect_retry_for": 600.0},
    )
    with FakeObs(workdir / "obs") as obs:
        obs.add_build(PROJECT, PACKAGE, files={IMAGE: image})
        settings.update(api_url=obs.api_url, download_url=obs.download_url)
        image_path = f"repositories/{PROJECT.replace(':', ':/')}/images/{IMAGE}"
        try:
            cloud_init = example.build(prepare="cloud-init", **settings)
            with stage("first converge (download, seed, define, boot, key, provision)"):
                first = run_graph(example, cloud_init, "first converge")
            done = statuses(first)
            # cloud-init may have written the key before sshd answered, so
            # the key job finds it there (OK) or waits for it (CHANGED).
            assert done.pop("Authorize key") in (JobStatus.OK, JobStatus.CHANGED)
            assert done == {
                "Find image": JobStatus.OK, "Download image": JobStatus.CHANGED,
                "Seed": JobStatus.CHANGED, "Create domain": JobStatus.CHANGED,
                "Wait for address": JobStatus.CHANGED, "Provision": JobStatus.CHANGED,
            }
            created = first.noderesults["Create domain"]
            assert created["domain_type"] == (DOMAIN_TYPE if DOMAIN_TYPE != "auto"
                                              else created["domain_type"])
            assert created["forwards"] == [["127.0.0.1", port, 22]]
            assert first.noderesults["Authorize key"]["ip"] == "127.0.0.1"
            assert first.noderesults["Authorize key"]["port"] == port
            assert f"[127.0.0.1]:{port} " in known.read_text()
            downloads = len(obs.requests_for(image_path, "GET"))
            xml = conn.lookupByName(NAME).XMLDesc(0)

            with stage("rerun of the converged guest (cloud-init graph)"):
                second = run_graph(example, cloud_init, "rerun (cloud-init)")
            assert set(statuses(second).values()) == {JobStatus.OK}
            assert len(obs.requests_for(image_path, "GET")) == downloads
            assert conn.lookupByName(NAME).XMLDesc(0) == xml

            # The console method: take the key away, let the console put it back.
            example.converge(example.build(
                prepare="none", **{**settings, "commands": ["rm -f /root/.ssh/authorized_keys"],
                                   "check": None}), verbose=False, tries=1, retry_delay=0)
            console = example.build(prepare="console", console_password=password, **settings)
            with stage("console method: log in on the serial console, write the key"):
                third = run_graph(example, console, "console method")
            assert third.results["Authorize key"].status is JobStatus.CHANGED
            assert third.results["Provision"].status is JobStatus.OK
            with stage("rerun of the converged guest (console graph)"):
                fourth = run_graph(example, console, "rerun (console)")
            assert set(statuses(fourth).values()) == {JobStatus.OK}
        finally:
            disks = [created_disk(conn)]
            with stage("remove the domain and its disk"):
                gone = DoJobber()
                gone.configure(RemoveDomain.variant("Remove domain", domain=NAME, uri=URI),
                               default_tries=1)
                gone.checknrun()
        assert gone.success(), gone.nodeexceptions
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(NAME)
        for disk in disks:
            assert disk is None or not os.path.exists(disk)
        assert [d.name() for d in conn.listAllDomains() if d.name() == NAME] == []
    conn.close()
    report = {"stages": times, "jobs": per_job}
    (CACHE / "last-run.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def created_disk(conn: Any) -> str | None:
    """The domain's disk file (to check it is deleted), if the domain exists."""
    try:
        dom = conn.lookupByName(NAME)
    except libvirt.libvirtError:
        return None
    from dojobber.contrib._disks import disk_sources

    found = disk_sources(dom.XMLDesc(0))
    return found[0] if found else None
