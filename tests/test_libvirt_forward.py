"""CreateDomain's seed CD-ROM, port forwards and domain type; WaitForAddress
through a forward.  libvirt's ``test:///default`` driver holds the domain
definitions; the forward's host side is a real loopback sshd (the test
driver runs no guest), so the probe reads a real SSH banner from 127.0.0.1.
"""

from __future__ import annotations

import gc
import logging
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from dojobber import DoJobber, Job, JobStatus, RunResult  # noqa: E402
from dojobber.contrib._disks import choose_domain_type  # noqa: E402
from dojobber.contrib._forward import (  # noqa: E402
    QEMU_NS,
    forward_for,
    forwarding_elements,
    forwards_of,
)
from dojobber.contrib.libvirt import CreateDomain, WaitForAddress  # noqa: E402
from dojobber.contrib.libvirt_errors import (  # noqa: E402
    AddressTimeoutError,
    DomainDriftError,
    InvalidLibvirtOptionError,
    LibvirtJobError,
)
from tests.fakes.sshd import Sshd, free_port, sshd_available  # noqa: E402

URI = "test:///default"


@pytest.fixture
def conn() -> Iterator[Any]:
    c = libvirt.open(URI)
    yield c
    gc.collect()
    c.close()


@pytest.fixture
def image(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "images" / "base.qcow2"
    path.parent.mkdir()
    qemu_img = shutil.which("qemu-img")
    if qemu_img:
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), "1G"],
                       check=True, timeout=60)
    else:
        path.write_bytes(b"QFI\xfb" + bytes(20) + (1 << 30).to_bytes(8, "big"))
    return str(path)


def run(root: type[Job]) -> RunResult:
    dj = DoJobber()
    dj.configure(root, default_tries=1, default_retry_delay=0)
    return dj.checknrun()


def test_seed_is_a_readonly_cdrom_and_a_rerun_redefines_nothing(
    conn: Any, image: str, tmp_path: pathlib.Path
) -> None:
    seed = tmp_path / "vm1-seed.iso"
    seed.write_bytes(b"iso bytes")
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image, seed=str(seed))
    assert run(Vm).jobs["vm1"].status is JobStatus.CHANGED
    xml = conn.lookupByName("vm1").XMLDesc(0)
    cdrom = ET.fromstring(xml).find("devices/disk[@device='cdrom']")
    assert cdrom is not None and cdrom.find("readonly") is not None
    assert cdrom.find("source").get("file") == str(seed)  # type: ignore[union-attr]
    assert run(Vm).jobs["vm1"].status is JobStatus.OK
    assert conn.lookupByName("vm1").XMLDesc(0) == xml

    other = tmp_path / "other-seed.iso"
    other.write_bytes(b"x")
    err = run(Vm.variant("vm1", seed=str(other))).jobs["vm1"].exception
    assert isinstance(err, DomainDriftError)
    assert any(d.startswith("seed: wanted") for d in err.differences)


def test_seed_from_a_job_result_and_a_template_without_its_placeholder(
    conn: Any, image: str, tmp_path: pathlib.Path
) -> None:
    seed = tmp_path / "s.iso"
    seed.write_bytes(b"iso")

    class MakeSeed(Job):
        def Check(self) -> dict[str, str]:
            from dojobber.contrib._runscope import publish

            publish(self.global_storage, "MakeSeed", {"path": str(seed)}, {})
            return {"path": str(seed)}

    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image, seed=MakeSeed)
    assert list(Vm.DEPS) == [MakeSeed]
    assert run(Vm).jobs["vm1"].status is JobStatus.CHANGED
    template = ("<domain type='${domain_type}'><name>${name}</name><memory>${memory_kib}"
                "</memory><os><type>hvm</type></os><devices>${disk}</devices></domain>")
    err = run(CreateDomain.variant("vm2", uri=URI, name="vm2", image=image, template=template,
                                   seed=str(seed))).jobs["vm2"].exception
    assert isinstance(err, LibvirtJobError) and "${seed}" in str(err)


def test_port_forwards_are_defined_and_compared(conn: Any, image: str) -> None:
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image, network=None,
                              port_forwards={2222: 22, 8080: 80})
    result = run(Vm)
    assert result.jobs["vm1"].status is JobStatus.CHANGED
    assert sorted(result.jobs["vm1"].result["forwards"]) == [["127.0.0.1", 2222, 22],
                                                             ["127.0.0.1", 8080, 80]]
    # The test driver keeps no <qemu:commandline>: the forwards come from the
    # domain's metadata, which the job wrote next to it.
    assert forwards_of(conn.lookupByName("vm1").XMLDesc(0)) == [
        ("127.0.0.1", 2222, 22), ("127.0.0.1", 8080, 80)]
    assert run(Vm).jobs["vm1"].status is JobStatus.OK
    err = run(Vm.variant("vm1", port_forwards={2223: 22})).jobs["vm1"].exception
    assert isinstance(err, DomainDriftError)
    assert any("2222->22" in d and "2223->22" in d for d in err.differences)


@pytest.mark.parametrize("backend", ["slirp", "passt"])
def test_forwarding_xml_reads_back(backend: str) -> None:
    iface, extra = forwarding_elements({2222: 22}, "127.0.0.1", backend)
    xml = f"<domain><devices>{iface}</devices>{extra}</domain>"
    root = ET.fromstring(xml)
    if backend == "slirp":
        assert iface == ""
        args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
        assert args[:2] == ["-netdev", "user,id=dojobber-net0,hostfwd=tcp:127.0.0.1:2222-:22"]
    else:
        assert root.find("devices/interface/backend").get("type") == "passt"  # type: ignore[union-attr]
    # without the metadata the forwards still read back from the real elements
    meta = root.find("metadata")
    assert meta is not None
    root.remove(meta)
    assert forwards_of(ET.tostring(root, encoding="unicode")) == [("127.0.0.1", 2222, 22)]
    assert forward_for(xml, 22) == ("127.0.0.1", 2222) and forward_for(xml, 80) is None


def test_wait_for_address_through_the_forward_reads_the_banner(
    conn: Any, image: str, tmp_path: pathlib.Path
) -> None:
    if not sshd_available():
        pytest.skip("needs openssh-server")
    port = free_port()
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image, network=None,
                              port_forwards={port: 22})
    Ip = WaitForAddress.variant("vm1 ssh", domain=Vm, forwarded_port=22, timeout=1,
                                interval=0.2, probe_timeout=0.5)
    # Nothing listens on the host port yet: no answer, a timeout naming it.
    err = run(Ip).jobs["vm1 ssh"].exception
    assert isinstance(err, AddressTimeoutError)
    assert f"127.0.0.1:{port}" in str(err)
    with Sshd(tmp_path / "sshd", port=port):
        result = run(Ip)
    assert result.jobs["vm1 ssh"].status is JobStatus.OK
    assert result.jobs["vm1 ssh"].result == {
        "domain_name": "vm1", "ip": "127.0.0.1", "port": port, "source": "forward",
        "addresses": ["127.0.0.1"]}


def test_forwarded_port_without_a_forward_is_named(conn: Any, image: str) -> None:
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image)
    Ip = WaitForAddress.variant("ip", domain=Vm, forwarded_port=22, timeout=1)
    err = run(Ip).jobs["ip"].exception
    assert isinstance(err, LibvirtJobError)
    assert "port_forwards" in str(err) and "forwarded_port" in str(err)


def test_domain_type_choice_and_fallback(caplog: pytest.LogCaptureFixture,
                                         image: str) -> None:
    kvm_caps = ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host><guest>"
                "<arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch>"
                "</guest></capabilities>")
    tcg_caps = kvm_caps.replace("<domain type='kvm'/>", "")
    auto = CreateDomain.variant("a", name="a", image=image)
    caplog.set_level(logging.WARNING, "dojobber.contrib.libvirt")
    assert choose_domain_type(auto(), kvm_caps, "QEMU") == "kvm"
    assert caplog.text == ""
    assert choose_domain_type(auto(), tcg_caps, "QEMU") == "qemu"
    assert "TCG" in caplog.text and "a" in caplog.text
    assert choose_domain_type(auto(), kvm_caps, "Test") == "test"
    tcg = CreateDomain.variant("t", name="t", image=image, domain_type="qemu")
    assert choose_domain_type(tcg(), kvm_caps, "QEMU") == "qemu"
    with pytest.raises(InvalidLibvirtOptionError, match="domain_type"):
        CreateDomain.variant("b", name="b", image=image, domain_type="xen")
    with pytest.raises(InvalidLibvirtOptionError, match="port_forwards"):
        CreateDomain.variant("b", name="b", image=image, port_forwards={0: 22})
    with pytest.raises(InvalidLibvirtOptionError, match="forward_backend"):
        CreateDomain.variant("b", name="b", image=image, forward_backend="vde")


def test_explicit_domain_type_is_compared(conn: Any, image: str) -> None:
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image)
    assert run(Vm).jobs["vm1"].status is JobStatus.CHANGED
    assert run(Vm).jobs["vm1"].result["domain_type"] == "test"
    err = run(Vm.variant("vm1", domain_type="qemu")).jobs["vm1"].exception
    assert isinstance(err, DomainDriftError)
    assert "domain type: wanted qemu, defined test" in err.differences


def test_the_check_of_a_defined_domain_does_not_read_host_capabilities(
        conn: Any, image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the host's capabilities takes libvirtd seconds on a real
    host (8 s per call on this machine's qemu:///system), so only defining a
    domain reads them; the drift check takes type and arch from the defined
    domain.  Counted on the real connection of the test driver."""
    calls: list[str] = []
    real = libvirt.virConnect.getCapabilities

    def counted(self: Any) -> str:
        calls.append(self.getURI())
        return str(real(self))

    monkeypatch.setattr(libvirt.virConnect, "getCapabilities", counted)
    Vm = CreateDomain.variant("vm1", uri=URI, name="vm1", image=image)
    assert run(Vm).jobs["vm1"].status is JobStatus.CHANGED
    assert calls == [URI]
    assert run(Vm).jobs["vm1"].status is JobStatus.OK
    err = run(Vm.variant("vm1", memory="3G")).jobs["vm1"].exception
    assert isinstance(err, DomainDriftError)
    assert calls == [URI]
