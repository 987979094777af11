"""Domain XML for the libvirt jobs: sizes, the template, what matters in it.

No libvirt import here: these are plain functions over strings, shared by
:mod:`dojobber.contrib.libvirt` and its tests.
"""

from __future__ import annotations

import os
import re
import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ._forward import forwards_of

__all__ = [
    "DEFAULT_TEMPLATE",
    "DomainSpec",
    "cdrom_element",
    "defined_arch",
    "differences",
    "disk_element",
    "interface_element",
    "parse_memory",
    "render",
    "spec_of",
]

_UNITS = {
    "": 1024 * 1024,  # a bare number is MiB, as for virt-install --memory
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_memory(value: object) -> int:
    """A memory size as KiB.

    Accepts an int (MiB, like ``virt-install --memory``) or a string: a
    number with an optional unit ``K``/``M``/``G``/``T`` (binary: ``2G`` is
    2 GiB, as in qemu and virsh), ``KiB``/``MiB``/``GiB``/``TiB``, decimal
    ``KB``/``MB``/``GB``/``TB`` or ``B``; a bare number is MiB.  Raises
    ValueError for anything else, or for less than 1 MiB.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory {value!r} is not a size")
    if isinstance(value, int):
        size = value * 1024 * 1024
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(
                f"memory {value!r}: unknown unit {m.group(2)!r}; use K, M, G, T "
                "(binary), KiB/MiB/GiB, KB/MB/GB or B"
            )
        size = int(float(m.group(1)) * _UNITS[unit])
    else:
        raise ValueError(
            f"memory {value!r} is not a size; give e.g. \"2G\", \"512M\" or an int of MiB"
        )
    if size < 1024 * 1024:
        raise ValueError(f"memory {value!r} is less than 1 MiB")
    return size // 1024


#: The built-in domain template (``string.Template`` placeholders, see
#: :func:`render`): a virtio disk and NIC, serial console, guest-agent
#: channel and a virtio RNG; host CPU passthrough with KVM; ``${seed}`` is
#: the cloud-init seed CD-ROM and ``${forwarding}`` the port forwards' NIC
#: (see :mod:`dojobber.contrib._forward`); both empty when unused.
DEFAULT_TEMPLATE = """\
<domain type='${domain_type}'>
  <name>${name}</name>
  <memory unit='KiB'>${memory_kib}</memory>
  <currentMemory unit='KiB'>${memory_kib}</currentMemory>
  <vcpu>${vcpu}</vcpu>
  <os>
    <type arch='${arch}'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  ${cpu}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    ${disk}
    ${seed}
    ${interface}
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  ${forwarding}
</domain>
"""


def disk_element(path: str | None, fmt: str) -> str:
    """The ``<disk>`` element for a file (or volume path) of format ``fmt``."""
    if not path:
        return ""
    return (
        "<disk type='file' device='disk'>"
        f"<driver name='qemu' type={quoteattr(fmt)}/>"
        f"<source file={quoteattr(path)}/>"
        "<target dev='vda' bus='virtio'/></disk>"
    )


def cdrom_element(path: str | None) -> str:
    """A read-only CD-ROM holding ``path`` (a cloud-init seed) on its own
    virtio-scsi controller: virtio-scsi works on every machine type and
    architecture, and guests with virtio drivers have it, while a SATA
    CD-ROM needs ``ahci`` (missing from Debian's cloud kernel) and IDE exists
    only on i440fx machines."""
    if not path:
        return ""
    return (
        "<controller type='scsi' model='virtio-scsi'/>"
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
        f"<source file={quoteattr(path)}/><target dev='sda' bus='scsi'/><readonly/></disk>"
    )


def interface_element(network: str | None) -> str:
    """The ``<interface>`` element on libvirt network ``network`` (or none)."""
    if not network:
        return ""
    return (
        f"<interface type='network'><source network={quoteattr(network)}/>"
        "<model type='virtio'/></interface>"
    )


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``template``'s ``${placeholder}`` s; values are XML-escaped,
    except the element placeholders ``disk``, ``seed``, ``interface``, ``cpu``
    and ``forwarding``.

    Raises KeyError naming a placeholder the template uses that is unknown.
    """
    raw = {"disk", "interface", "cpu", "seed", "forwarding"}
    filled = {k: (v if k in raw else escape(v, {"'": "&apos;", '"': "&quot;"}))
              for k, v in values.items()}
    return string.Template(template).substitute(filled)


@dataclass(frozen=True)
class DomainSpec:
    """What the jobs compare between the wanted and the defined domain."""

    memory_kib: int | None
    vcpu: int | None
    disk: str | None
    networks: tuple[str, ...]
    #: None: not compared (the job chose the type itself).
    domain_type: str | None = None
    #: Source of the first CD-ROM; None: not compared.
    cdrom: str | None = None


def _to_kib(element: ET.Element | None) -> int | None:
    if element is None or element.text is None:
        return None
    unit = (element.get("unit") or "KiB").lower()
    factor = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
              "g": 1024**3, "gib": 1024**3, "t": 1024**4, "tib": 1024**4,
              "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}.get(unit, 1024)
    return int(element.text.strip()) * factor // 1024


def defined_arch(xml: str) -> str:
    """The ``<os><type arch=...>`` of a domain XML ("x86_64" when absent)."""
    element = ET.fromstring(xml).find("os/type")
    return (element.get("arch") if element is not None else None) or "x86_64"


def spec_of(xml: str) -> DomainSpec:
    """Memory (KiB), vCPUs, first disk's source and the networks of a
    domain XML.  Raises ValueError when ``xml`` is not XML."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise ValueError(f"domain XML does not parse: {err}") from None
    vcpu_el = root.find("vcpu")
    vcpu = int(vcpu_el.text.strip()) if vcpu_el is not None and vcpu_el.text else None
    disk = None
    for el in root.iterfind("devices/disk"):
        if el.get("device", "disk") != "disk":
            continue
        source = el.find("source")
        if source is not None:
            disk = source.get("file") or source.get("dev") or source.get("volume")
            if disk and el.get("type") == "file":
                disk = os.path.normpath(disk)
        break
    cdrom = None
    for el in root.iterfind("devices/disk[@device='cdrom']"):
        source = el.find("source")
        cdrom = None if source is None else source.get("file")
        cdrom = os.path.normpath(cdrom) if cdrom else None
        break
    networks = []
    for el in root.iterfind("devices/interface"):
        source = el.find("source")
        kind = el.get("type", "")
        name = None if source is None else (source.get("network") or source.get("bridge"))
        networks.append(f"{kind}:{name}" if name else kind)
    networks += [f"forward:{address or '*'}:{host}->{guest}"
                 for address, host, guest in forwards_of(xml)]
    return DomainSpec(_to_kib(root.find("memory")), vcpu, disk, tuple(networks),
                      root.get("type"), cdrom)


def differences(wanted: DomainSpec, found: DomainSpec) -> list[str]:
    """Human lines for each way ``found`` differs from ``wanted``."""
    diffs = []
    if wanted.memory_kib is not None and wanted.memory_kib != found.memory_kib:
        diffs.append(f"memory: wanted {wanted.memory_kib} KiB, defined {found.memory_kib} KiB")
    if wanted.vcpu is not None and wanted.vcpu != found.vcpu:
        diffs.append(f"vcpu: wanted {wanted.vcpu}, defined {found.vcpu}")
    if wanted.disk != found.disk:
        diffs.append(f"disk: wanted {wanted.disk or 'none'}, defined {found.disk or 'none'}")
    if wanted.domain_type is not None and wanted.domain_type != found.domain_type:
        diffs.append(f"domain type: wanted {wanted.domain_type}, defined {found.domain_type}")
    if wanted.cdrom is not None and wanted.cdrom != found.cdrom:
        diffs.append(f"seed: wanted {wanted.cdrom}, defined {found.cdrom or 'none'}")
    if wanted.networks != found.networks:
        diffs.append(
            f"network: wanted {', '.join(wanted.networks) or 'none'}, "
            f"defined {', '.join(found.networks) or 'none'}"
        )
    return diffs
