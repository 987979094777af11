"""The bundled libvirt jobs against libvirt's test driver (``test:///default``).

The test driver keeps its state per process while a connection is open; the
``conn`` fixture holds one for the test and closes it after, so each test
starts from the driver's default state.  The guest addresses the test driver
reports are made up: nothing here ever connects to them.
"""

from __future__ import annotations

import gc
import logging
import os
import pathlib
import pickle
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from dojobber import Job, JobStatus, RunResult  # noqa: E402
from dojobber.contrib._domainxml import parse_memory  # noqa: E402
from dojobber.contrib._runscope import publish  # noqa: E402
from dojobber.contrib.libvirt import CreateDomain, RemoveDomain, WaitForAddress  # noqa: E402
from dojobber.contrib.libvirt_errors import (  # noqa: E402
    AddressTimeoutError,
    DiskError,
    DomainDriftError,
    DomainNotFoundError,
    InvalidLibvirtOptionError,
    LibvirtCallError,
    LibvirtJobError,
)
from tests.helpers import run_once  # noqa: E402

URI = "test:///default"


@pytest.fixture
def conn() -> Iterator[Any]:
    c = libvirt.open(URI)
    yield c
    # Domain objects (kept alive by exception tracebacks in results) hold the
    # connection too; collect them so closing really resets the driver.
    gc.collect()
    c.close()


@pytest.fixture
def image(tmp_path: pathlib.Path) -> str:
    """A real (empty) qcow2 image with a 10 GiB virtual size, made by qemu-img
    (Debian's qemu-utils, installed by scripts/system-deps.sh)."""
    path = tmp_path / "images" / "base.qcow2"
    path.parent.mkdir()
    qemu_img = shutil.which("qemu-img")
    assert qemu_img, "qemu-img is missing: run scripts/system-deps.sh (package qemu-utils)"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), "10G"], check=True)
    return str(path)


def statuses(result: RunResult) -> dict[str, JobStatus]:
    return {name: res.status for name, res in result.jobs.items()}


def vm(image: str, name: str = "vm1", **options: Any) -> Any:
    options.setdefault("disk_mode", "copy")  # the overlay mode has its own test
    return CreateDomain.variant(name, uri=URI, name=name, image=image, **options)


class Seen(Job):
    """Records the job context the jobs before it left."""

    seen: dict[str, Any] = {}

    def Check(self) -> None:
        assert self.global_storage is not None
        Seen.seen = dict(self.global_storage["kanku"])


# -- create ---------------------------------------------------------------
def test_create_then_rerun_changes_nothing(conn: Any, image: str) -> None:
    Vm = vm(image, memory="1G", vcpu=1)
    first = run_once(Vm)
    assert first.jobs["vm1"].status is JobStatus.CHANGED
    dom = conn.lookupByName("vm1")
    assert dom.isActive()
    assert dom.maxMemory() == 1024 * 1024
    disk = first.jobs["vm1"].result["disk"]
    assert disk == os.path.join(os.path.dirname(image), "vm1-disk.qcow2")
    with open(disk, "rb") as a, open(image, "rb") as b:
        assert a.read() == b.read()
    assert first.jobs["vm1"].result["disk_mode"] == "copy"
    xml_before = dom.XMLDesc(0)

    second = run_once(Vm)
    assert statuses(second) == {"vm1": JobStatus.OK}
    assert conn.lookupByName("vm1").XMLDesc(0) == xml_before


def test_results_are_published_per_job_and_flat(conn: Any, image: str) -> None:
    Vm = vm(image)
    Ip = WaitForAddress.variant("vm1 ip", domain=Vm)
    After = type("After", (Seen,), {"DEPS": [Ip]})
    assert run_once(After).jobs["After"].status is JobStatus.OK
    seen = Seen.seen
    assert seen["jobs"]["vm1"]["domain_name"] == "vm1"
    assert seen["jobs"]["vm1"]["uri"] == URI
    assert seen["domain_name"] == "vm1"
    assert seen["jobs"]["vm1 ip"]["ip"] == seen["ip"]
    assert seen["jobs"]["vm1 ip"]["source"] == "lease"


def test_stopped_domain_is_started_not_redefined(conn: Any, image: str) -> None:
    Vm = vm(image)
    run_once(Vm)
    dom = conn.lookupByName("vm1")
    uuid = dom.UUIDString()
    dom.destroy()
    assert not dom.isActive()
    result = run_once(Vm)
    assert result.jobs["vm1"].status is JobStatus.CHANGED
    dom = conn.lookupByName("vm1")
    assert dom.isActive() and dom.UUIDString() == uuid


def test_drift_is_an_error_that_says_what_differs(conn: Any, image: str) -> None:
    run_once(vm(image, memory="1G", vcpu=1))
    before = conn.lookupByName("vm1").XMLDesc(0)
    result = run_once(vm(image, memory="2G", vcpu=1, network=None))
    err = result.jobs["vm1"].exception
    assert isinstance(err, DomainDriftError)
    assert err.domain == "vm1"
    assert any(d.startswith("memory: wanted 2097152 KiB, defined 1048576 KiB")
               for d in err.differences)
    assert any(d.startswith("network: wanted none") for d in err.differences)
    assert not any(d.startswith("vcpu") for d in err.differences)
    assert "vm1" in str(err) and "not redefined" in str(err)
    assert conn.lookupByName("vm1").XMLDesc(0) == before


def test_domain_of_someone_else_is_drift(conn: Any, image: str) -> None:
    """The driver's own domain 'test' exists with another disk: refused."""
    result = run_once(vm(image, name="test", memory="8G"))
    err = result.jobs["test"].exception
    assert isinstance(err, DomainDriftError)
    assert any(d.startswith("disk: wanted a new disk") for d in err.differences)
    assert not os.path.exists(os.path.join(os.path.dirname(image), "test-disk.qcow2"))


def test_autostart_is_converged(conn: Any, image: str) -> None:
    run_once(vm(image, autostart=True))
    assert conn.lookupByName("vm1").autostart() == 1
    assert statuses(run_once(vm(image, autostart=True))) == {"vm1": JobStatus.OK}


def test_two_vms_are_two_variants(conn: Any, image: str) -> None:
    A = vm(image, "a", memory="512M")
    B = vm(image, "b", memory=768)
    IpA = WaitForAddress.variant("a ip", domain=A)
    IpB = WaitForAddress.variant("b ip", domain=B)
    Both = type("Both", (Seen,), {"DEPS": [IpA, IpB]})
    result = run_once(Both)
    assert result.jobs["Both"].status is JobStatus.OK
    assert conn.lookupByName("a").maxMemory() == 512 * 1024
    assert conn.lookupByName("b").maxMemory() == 768 * 1024
    assert Seen.seen["jobs"]["a ip"]["domain_name"] == "a"
    assert Seen.seen["jobs"]["b ip"]["domain_name"] == "b"
    assert {s for s in statuses(run_once(Both)).values()} == {JobStatus.OK}


def test_image_from_a_job_result(conn: Any, image: str) -> None:
    class Download(Job):
        def Check(self) -> str:
            publish(self.global_storage, "Download", {"path": image}, {})
            return image

    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=Download,
                              disk_mode="copy")
    assert list(Vm.DEPS) == [Download]
    result = run_once(Vm)
    assert result.jobs["vm1"].status is JobStatus.CHANGED
    assert result.jobs["vm1"].result["disk"].endswith("vm1-disk.qcow2")


def test_missing_image_fails_and_defines_nothing(conn: Any, tmp_path: pathlib.Path) -> None:
    result = run_once(vm(str(tmp_path / "nope.qcow2")))
    err = result.jobs["vm1"].exception
    assert isinstance(err, DiskError) and "nope.qcow2" in str(err)
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("vm1")


def test_custom_template_with_placeholders(conn: Any, image: str, tmp_path: pathlib.Path) -> None:
    template = tmp_path / "domain.xml"
    template.write_text(
        "<domain type='${domain_type}'><name>${name}</name>"
        "<memory unit='KiB'>${memory_kib}</memory><vcpu>${vcpu}</vcpu>"
        "<os><type arch='${arch}'>hvm</type></os><description>made by dojobber</description>"
        "<devices>${disk}${interface}</devices></domain>"
    )
    Vm = vm(image, template=str(template), memory="256M")
    assert run_once(Vm).jobs["vm1"].status is JobStatus.CHANGED
    xml = conn.lookupByName("vm1").XMLDesc(0)
    assert "made by dojobber" in xml and "vm1-disk.qcow2" in xml
    assert statuses(run_once(Vm)) == {"vm1": JobStatus.OK}


def test_malformed_template_is_named(conn: Any, image: str) -> None:
    err = run_once(vm(image, template="<domain><name>${name}</domain>")).jobs["vm1"].exception
    assert isinstance(err, LibvirtJobError) and "well-formed" in str(err)


def test_unknown_template_placeholder_is_named(conn: Any, image: str) -> None:
    err = run_once(vm(image, template="<domain>${nonsense}</domain>")).jobs["vm1"].exception
    assert isinstance(err, LibvirtJobError)
    assert "nonsense" in str(err) and "${memory_kib}" in str(err)


def test_pool_without_upload_support_falls_back_to_a_per_domain_disk(
    conn: Any, image: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "dojobber.contrib.libvirt")
    result = run_once(vm(image, pool="default-pool", disk_mode="auto"))
    # auto: an overlay, since qemu-img is installed (scripts/system-deps.sh)
    assert result.jobs["vm1"].result["disk_mode"] == "overlay"
    assert "cannot upload to pool default-pool" in caplog.text
    # the volume made for the upload attempt is gone again
    pool = conn.storagePoolLookupByName("default-pool")
    assert "vm1-disk.qcow2" not in [v.name() for v in pool.listAllVolumes()]


def test_volume_mode_without_upload_support_is_an_error(conn: Any, image: str) -> None:
    err = run_once(vm(image, pool="default-pool", disk_mode="volume")).jobs["vm1"].exception
    assert isinstance(err, DiskError) and "cannot upload" in str(err)
    pool = conn.storagePoolLookupByName("default-pool")
    assert pool.listAllVolumes() == []
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("vm1")


def test_overlay_mode_makes_a_qcow2_backed_by_the_image(conn: Any, image: str) -> None:
    result = run_once(vm(image, disk_mode="overlay"))
    disk = result.jobs["vm1"].result["disk"]
    assert disk.endswith("vm1-overlay.qcow2")
    info = subprocess.run(["qemu-img", "info", "--output=json", disk], check=True,
                          capture_output=True, text=True).stdout
    assert f'"backing-filename": "{image}"' in info
    assert run_once(vm(image, disk_mode="overlay")).jobs["vm1"].status is JobStatus.OK


def test_overlay_mode_needs_qemu_img(
    conn: Any, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    err = run_once(vm(image, disk_mode="overlay")).jobs["vm1"].exception
    assert isinstance(err, DiskError) and "qemu-img" in str(err)


def test_option_values_are_checked_when_the_variant_is_made(image: str) -> None:
    with pytest.raises(InvalidLibvirtOptionError, match="memory"):
        vm(image, memory="2 parsecs")
    with pytest.raises(InvalidLibvirtOptionError, match="disk_mode"):
        vm(image, disk_mode="volume")
    with pytest.raises(InvalidLibvirtOptionError, match="sources"):
        WaitForAddress.variant("w", domain="x", sources=["dns"])


@pytest.mark.parametrize(
    ("value", "kib"),
    [("2G", 2 << 20), ("2GiB", 2 << 20), ("512M", 512 << 10), ("1.5G", 3 << 19),
     (1024, 1 << 20), ("1024", 1 << 20), ("2GB", 2_000_000_000 // 1024), ("1T", 1 << 30)],
    ids=repr,  # the int 1024 and the string "1024" apart
)
def test_memory_sizes(value: object, kib: int) -> None:
    assert parse_memory(value) == kib


@pytest.mark.parametrize("value", ["", "lots", "2X", "12K", True, 1.5, None])
def test_bad_memory_sizes(value: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(value)


# -- errors ----------------------------------------------------------------
def test_libvirt_errors_are_named_and_not_printed(
    capfd: pytest.CaptureFixture[str], tmp_path: pathlib.Path, image: str
) -> None:
    bad = f"test://{tmp_path}/missing.xml"
    vm1 = CreateDomain.variant("vm1", uri=bad, name="vm1", image=image)
    err = run_once(vm1).jobs["vm1"].exception
    assert isinstance(err, LibvirtCallError)
    assert err.uri == bad and err.code is not None
    assert "connect on" in str(err) and "missing.xml" in str(err)
    assert "libvirt:" not in capfd.readouterr().err


@pytest.mark.parametrize("error", [
    LibvirtCallError("j", URI, "connect", "no", 38),
    DomainDriftError("j", "vm", ["memory: wanted 1, defined 2"]),
    DomainNotFoundError("j", "vm", URI),
    AddressTimeoutError("j", "vm", 3.0, ["lease"], {"lease": "none"}),
    DiskError("j", "no image"),
    InvalidLibvirtOptionError("j", "memory", "x", "not a size"),
])
def test_errors_pickle(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)


# -- wait for address --------------------------------------------------------
def test_wait_for_address_of_a_domain_by_name(conn: Any) -> None:
    Ip = WaitForAddress.variant("ip", domain="test", uri=URI)
    result = run_once(Ip)
    assert result.jobs["ip"].status is JobStatus.OK
    assert result.jobs["ip"].result["domain_name"] == "test"


def test_wait_for_address_times_out(conn: Any, image: str) -> None:
    Vm = vm(image, network=None)
    Ip = WaitForAddress.variant("ip", domain=Vm, timeout=0.3, interval=0.05)
    result = run_once(Ip)
    err = result.jobs["ip"].exception
    assert isinstance(err, AddressTimeoutError)
    assert err.domain == "vm1" and err.timeout == 0.3
    assert set(err.errors) == {"lease", "agent", "arp"}
    assert any(p.name == "run" for p in result.jobs["ip"].phases)


def test_wait_for_address_family(conn: Any, image: str) -> None:
    Ip = WaitForAddress.variant("ip", domain=vm(image), family="ipv6", timeout=0.2,
                                interval=0.05, sources=["lease"])
    assert isinstance(run_once(Ip).jobs["ip"].exception, AddressTimeoutError)


def test_wait_for_a_missing_domain(conn: Any) -> None:
    err = run_once(WaitForAddress.variant("ip", domain="ghost", uri=URI)).jobs["ip"].exception
    assert isinstance(err, DomainNotFoundError) and "ghost" in str(err)


# -- remove ----------------------------------------------------------------
def test_remove_with_and_without_volumes(conn: Any, image: str) -> None:
    Vm = vm(image)
    disk = run_once(Vm).jobs["vm1"].result["disk"]
    Rm = RemoveDomain.variant("rm", domain=Vm)
    assert run_once(Rm).jobs["rm"].status is JobStatus.CHANGED
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("vm1")
    assert not os.path.exists(disk)
    assert os.path.exists(image)
    assert statuses(run_once(Rm)) == {"rm": JobStatus.OK}

    run_once(Vm)
    Keep = RemoveDomain.variant("keep", domain="vm1", uri=URI, keep_volumes=True)
    assert run_once(Keep).jobs["keep"].status is JobStatus.CHANGED
    assert os.path.exists(disk)
    assert statuses(run_once(Keep)) == {"keep": JobStatus.OK}


@pytest.mark.parametrize("vcpu", [-1, 0, True, 2.5, "2", 100_000])
def test_vcpu_is_checked_when_the_variant_is_made(image: str, vcpu: object) -> None:
    # (vcpu=-1 reaching libvirt's test driver crashes the whole process)
    with pytest.raises(InvalidLibvirtOptionError, match=r"vm1: option vcpu=.* vCPUs"):
        vm(image, vcpu=vcpu)
    for key in ("timeout", "interval"):
        with pytest.raises(InvalidLibvirtOptionError, match=key):
            WaitForAddress.variant("w", domain="x", **{key: float("inf")})
        with pytest.raises(InvalidLibvirtOptionError, match=key):
            WaitForAddress.variant("w", domain="x", **{key: -1})


def test_vcpu_of_a_subclass_is_checked_before_libvirt_sees_it(
        conn: Any, image: str, tmp_path: pathlib.Path) -> None:
    Vm = type("vm1", (vm(image),), {"vcpu": -1})
    err = run_once(Vm).jobs["vm1"].exception
    assert isinstance(err, InvalidLibvirtOptionError) and "vcpu=-1" in str(err)
    assert os.listdir(os.path.dirname(image)) == ["base.qcow2"]  # no disk made


def test_a_failed_define_leaves_no_disk_behind(conn: Any, image: str) -> None:
    template = ("<domain type='no-such-type'><name>${name}</name>"
                "<memory unit='KiB'>${memory_kib}</memory><vcpu>${vcpu}</vcpu>"
                "<os><type arch='${arch}'>hvm</type></os>"
                "<devices>${disk}${interface}</devices></domain>")
    result = run_once(vm(image, template=template))
    err = result.jobs["vm1"].exception
    assert isinstance(err, LibvirtJobError) and "define domain" in str(err)
    assert os.listdir(os.path.dirname(image)) == ["base.qcow2"]  # the copy is gone
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("vm1")


# -- check mode ------------------------------------------------------------
def test_check_mode_plans_define_start_wait_and_remove(conn: Any, image: str,
                                                       tmp_path: pathlib.Path) -> None:
    """A dry run says what each job would do, and the test driver shows it
    changed nothing."""
    Vm = vm(image, memory="1G", vcpu=1, autostart=True)
    Ip = WaitForAddress.variant("ip", domain=Vm, timeout=30)
    result = run_once(Ip, no_act=True)
    assert statuses(result) == {"vm1": JobStatus.WOULD_RUN, "ip": JobStatus.NOT_CHECKED}
    disk = os.path.join(os.path.dirname(image), "vm1-disk.qcow2")
    assert result.jobs["vm1"].plan == (
        f"define domain 'vm1' on {URI} (1G memory, 1 vCPU, a new disk: a copy {disk} of "
        f"{image}); set it to start at boot; start it")
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("vm1")
    assert not os.path.exists(disk)

    run_once(Vm)
    dom = conn.lookupByName("vm1")
    dom.destroy()
    dom.setAutostart(0)
    result = run_once(Vm, no_act=True)
    assert result.jobs["vm1"].plan == "set autostart of domain 'vm1' to True; start domain 'vm1'"
    assert not dom.isActive() and not dom.autostart()

    drifted = run_once(vm(image, memory="2G", vcpu=1, autostart=True), no_act=True)
    plan = drifted.jobs["vm1"].plan
    assert drifted.jobs["vm1"].status is JobStatus.WOULD_RUN and plan is not None
    assert plan.startswith("nothing it can fix: vm1: domain 'vm1'")
    assert "memory: wanted 2097152 KiB, defined 1048576 KiB" in plan
    assert plan.endswith("Run would fail (remove the domain, or change the options to match it)")

    removed = run_once(RemoveDomain.variant("rm", domain=Vm), no_act=True)
    assert removed.jobs["rm"].plan == f"undefine domain 'vm1'; delete its disks {disk}"
    kept = run_once(RemoveDomain.variant("keep", domain=Vm, keep_volumes=True), no_act=True)
    assert kept.jobs["keep"].plan == "undefine domain 'vm1'; keep its disks"
    assert os.path.exists(disk) and conn.lookupByName("vm1")

    Quiet = vm(image, name="vm2", network=None)
    run_once(Quiet)
    waits = run_once(WaitForAddress.variant("ip2", domain=Quiet, timeout=5), no_act=True)
    assert waits.jobs["ip2"].plan == (
        "wait up to 5s for domain 'vm2': an ipv4 address (asking lease, agent, arp)")

    missing = str(tmp_path / "missing.qcow2")
    nowhere = run_once(vm(missing, name="vm3"), no_act=True).jobs["vm3"]
    assert nowhere.status is JobStatus.WOULD_RUN and nowhere.plan is not None
    assert nowhere.plan.startswith(f"define domain 'vm3' on {URI}, but Run would fail: ")
    assert f"image {missing} does not exist" in nowhere.plan
