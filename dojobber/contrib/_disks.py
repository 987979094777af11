"""The per-domain disk of :class:`~dojobber.contrib.libvirt.CreateDomain`.

Disk modes (option ``disk_mode``):

``volume``
    a volume ``<name>-disk.<ext>`` in storage pool ``pool``, filled from the
    image with a libvirt stream upload (works remotely too);
``overlay``
    a copy-on-write qcow2 file ``<name>-overlay.qcow2`` backed by the image
    (made with ``qemu-img``), in ``disk_dir``;
``copy``
    a full copy ``<name>-disk.<ext>`` of the image, in ``disk_dir``;
``auto`` (default)
    ``volume`` when ``pool`` is set and the driver supports upload, else
    ``overlay`` when ``qemu-img`` is installed, else ``copy``.

Files are written to ``<path>.part`` and renamed into place, and a volume
whose upload fails is deleted, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from .._context import report_progress
from ..job import Job
from ._domainxml import cdrom_element, disk_element, interface_element, parse_memory, render
from ._forward import forwarding_elements
from ._runscope import job_name, job_result
from .libvirt_errors import DiskError, LibvirtJobError

if TYPE_CHECKING:
    from ._libvirtjob import LibvirtJob
    from .libvirt import CreateDomain

log = logging.getLogger("dojobber.contrib.libvirt")

MODES = ("auto", "volume", "overlay", "copy")
_CHUNK = 4 * 1024 * 1024


def check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"use one of {', '.join(MODES)}")


@dataclass(frozen=True)
class Disk:
    path: str
    fmt: str
    mode: str


def image_path(job: CreateDomain) -> str:
    """The base image: the ``image`` option, or what the job it names published."""
    ref = job.image
    name = type(job).__name__
    if isinstance(ref, type) and issubclass(ref, Job):
        value = (job_result(job.global_storage, ref) or {}).get("path")
        if not isinstance(value, (str, os.PathLike)):
            raise DiskError(name, f"job {job_name(ref)} recorded no image 'path'; put it in "
                            "DEPS so it runs first (a Download variant records one)")
        ref = value
    if not isinstance(ref, (str, os.PathLike)):
        raise DiskError(name, f"option image={ref!r} is neither a path nor a job")
    return os.path.abspath(os.path.expanduser(os.fspath(ref)))


def image_format(path: str) -> tuple[str, int]:
    """(format, virtual size in bytes) of an image file, from its header."""
    with open(path, "rb") as f:
        head = f.read(32)
    size = os.path.getsize(path)
    if head[:4] == b"QFI\xfb" and len(head) >= 32:
        return "qcow2", max(size, struct.unpack(">Q", head[24:32])[0])
    return "raw", size


@dataclass(frozen=True)
class DiskPlan:
    """Where the disk of one domain is (or will be)."""

    job: str
    name: str
    image: str
    pool: str | None
    mode: str
    directory: str
    fmt: str

    @classmethod
    def of(cls, job: str, name: str, image: str, pool: str | None, mode: str,
           disk_dir: str | None, fmt: str | None) -> DiskPlan:
        if not os.path.isfile(image):
            raise DiskError(job, f"image {image} does not exist; download it first")
        directory = os.path.expanduser(disk_dir) if disk_dir else os.path.dirname(image)
        return cls(job, name, image, pool, mode, os.path.abspath(directory),
                   fmt or image_format(image)[0])

    @property
    def ext(self) -> str:
        return "qcow2" if self.fmt == "qcow2" else "img"

    @property
    def overlay_path(self) -> str:
        return os.path.join(self.directory, f"{self.name}-overlay.qcow2")

    @property
    def copy_path(self) -> str:
        return os.path.join(self.directory, f"{self.name}-disk.{self.ext}")

    @property
    def volume_name(self) -> str:
        return f"{self.name}-disk.{self.ext}"

    def _pool(self, job: LibvirtJob, conn: libvirt.virConnect) -> libvirt.virStoragePool:
        with job._calling(f"look up storage pool {self.pool!r}"):
            return conn.storagePoolLookupByName(self.pool)

    def existing(self, job: LibvirtJob, conn: libvirt.virConnect) -> Disk | None:
        """The domain's disk if it was made already (no side effects)."""
        if self.pool and self.mode in ("auto", "volume"):
            pool = self._pool(job, conn)
            try:
                vol = pool.storageVolLookupByName(self.volume_name)
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    with job._calling(f"look up volume {self.volume_name!r}"):
                        raise
            else:
                with job._calling(f"read volume {self.volume_name!r}"):
                    return Disk(vol.path(), self.fmt, "volume")
        if self.mode in ("auto", "overlay") and os.path.isfile(self.overlay_path):
            return Disk(self.overlay_path, "qcow2", "overlay")
        if self.mode in ("auto", "copy") and os.path.isfile(self.copy_path):
            return Disk(self.copy_path, self.fmt, "copy")
        return None

    def describe(self) -> str:
        """What :meth:`create` would make, in words (no side effects)."""
        if self.pool and self.mode in ("auto", "volume"):
            return (f"a volume {self.volume_name} in pool {self.pool!r} holding {self.image}")
        if self.mode == "overlay" or (self.mode == "auto" and shutil.which("qemu-img")):
            return f"an overlay {self.overlay_path} over {self.image}"
        return f"a copy {self.copy_path} of {self.image}"

    def create(self, job: LibvirtJob, conn: libvirt.virConnect) -> Disk:
        """Make the disk in the first mode that works (see module doc)."""
        if self.pool and self.mode in ("auto", "volume"):
            disk = self._upload(job, conn)
            if disk is not None:
                return disk
            if self.mode == "volume":
                raise DiskError(self.job, f"the {conn.getType()} driver of {job._uri()} "
                                "cannot upload volumes; use disk_mode='auto'")
            log.warning("%s: the %s driver cannot upload to pool %s; the disk is a "
                        "per-domain file instead", self.job, conn.getType(), self.pool)
        os.makedirs(self.directory, exist_ok=True)
        if self.mode == "overlay" or (self.mode == "auto" and shutil.which("qemu-img")):
            return self._overlay()
        return self._copy()

    def _upload(self, job: LibvirtJob, conn: libvirt.virConnect) -> Disk | None:
        pool = self._pool(job, conn)
        size = os.path.getsize(self.image)
        capacity = max(size, image_format(self.image)[1])
        xml = (f"<volume><name>{self.volume_name}</name><capacity unit='bytes'>{capacity}"
               f"</capacity><target><format type='{self.fmt}'/></target></volume>")
        with job._calling(f"create volume {self.volume_name!r} in pool {self.pool!r}"):
            vol = pool.createXML(xml, 0)
        try:
            stream = conn.newStream(0)
            try:
                vol.upload(stream, 0, size, 0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    vol.delete(0)
                    return None
                raise
            with open(self.image, "rb") as src:
                sent = [0]

                def chunk(_stream: Any, nbytes: int, _opaque: Any) -> bytes:
                    data = src.read(min(nbytes, _CHUNK))
                    sent[0] += len(data)
                    report_progress(sent[0], size, "B")
                    return data

                try:
                    stream.sendAll(chunk, None)
                    stream.finish()
                except BaseException:
                    stream.abort()
                    raise
        except libvirt.libvirtError as err:
            vol.delete(0)
            with job._calling(f"upload {self.image} to volume {self.volume_name!r}"):
                raise err from None
        except BaseException:
            vol.delete(0)
            raise
        with job._calling(f"read volume {self.volume_name!r}"):
            path = vol.path()
        log.info("%s: uploaded %s to volume %s in pool %s", self.job, self.image,
                 self.volume_name, self.pool)
        return Disk(path, self.fmt, "volume")

    def _overlay(self) -> Disk:
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise DiskError(self.job, "disk_mode='overlay' needs qemu-img (package qemu-utils "
                            "or qemu-img); install it or use disk_mode='copy'")
        part = self.overlay_path + ".part"
        cmd = [qemu_img, "create", "-q", "-f", "qcow2", "-F", self.fmt, "-b", self.image, part]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            _remove(part)
            raise DiskError(self.job, f"qemu-img create failed: {done.stderr.strip()}")
        os.replace(part, self.overlay_path)
        log.info("%s: made overlay %s on %s", self.job, self.overlay_path, self.image)
        return Disk(self.overlay_path, "qcow2", "overlay")

    def _copy(self) -> Disk:
        part = self.copy_path + ".part"
        size = os.path.getsize(self.image)
        try:
            with open(self.image, "rb") as src, open(part, "wb") as dst:
                done = 0
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                    done += len(chunk)
                    report_progress(done, size, "B")
            os.replace(part, self.copy_path)
        except BaseException:
            _remove(part)
            raise
        log.info("%s: copied %s to %s", self.job, self.image, self.copy_path)
        return Disk(self.copy_path, self.fmt, "copy")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


DOMAIN_TYPES = ("auto", "kvm", "qemu")


def choose_domain_type(job: CreateDomain, caps: str, kind: str) -> str:
    """The job's ``domain_type``; for "auto" (or None): "test" on the test
    driver, "kvm" when the host offers it, else "qemu" (TCG emulation,
    logged as a warning, since guests run many times slower)."""
    wanted = job.domain_type or "auto"
    if wanted != "auto":
        return wanted
    if kind.upper() == "TEST":
        return "test"
    if "<domain type='kvm'" in caps:
        return "kvm"
    log.warning("%s: the host offers no KVM (no usable /dev/kvm); domain %s uses TCG "
                "emulation (domain type 'qemu'), which is many times slower",
                type(job).__name__, job.name)
    return "qemu"


def seed_path(job: CreateDomain) -> str | None:
    """The seed ISO: the ``seed`` option, or what the job it names published."""
    ref = job.seed
    if ref is None:
        return None
    if isinstance(ref, type) and issubclass(ref, Job):
        value = (job_result(job.global_storage, ref) or {}).get("path")
        if not isinstance(value, (str, os.PathLike)):
            raise DiskError(type(job).__name__, f"job {job_name(ref)} recorded no seed 'path'; "
                            "put it in DEPS so it runs first (a CloudInitSeed records one)")
        ref = value
    if not isinstance(ref, (str, os.PathLike)):
        raise DiskError(type(job).__name__, f"option seed={ref!r} is neither a path nor a job")
    return os.path.abspath(os.fspath(ref))


def host_arch(caps: str) -> str:
    """The host's CPU architecture from libvirt's capabilities XML."""
    return ET.fromstring(caps).findtext("host/cpu/arch") or "x86_64"


def domain_xml(job: CreateDomain, domain_type: str, arch: str, disk: Disk | None,
               default: str) -> str:
    """The domain XML from the job's template and options, for a domain of
    ``domain_type`` on ``arch``."""
    name = type(job).__name__
    seed = seed_path(job)
    forward_iface, forwarding = forwarding_elements(job.port_forwards, job.forward_address,
                                                    job.forward_backend)
    template = job.template
    if template is None:
        template = default
    elif isinstance(template, os.PathLike) or (
            isinstance(template, str) and "<" not in template and os.path.isfile(template)):
        with open(template, encoding="utf-8") as f:
            template = f.read()
    values = {
        "name": job.name,
        "memory_kib": str(parse_memory(job.memory)),
        "vcpu": str(int(job.vcpu)),
        "domain_type": domain_type,
        "arch": arch,
        "disk_path": disk.path if disk else "",
        "disk_format": disk.fmt if disk else "",
        "disk": disk_element(disk.path, disk.fmt) if disk else "",
        "network": job.network or "",
        "interface": forward_iface or interface_element(job.network),
        "seed": cdrom_element(seed),
        "forwarding": forwarding,
        "cpu": "<cpu mode='host-passthrough'/>" if domain_type == "kvm" else "",
    }
    for option, placeholder, where in (("seed", "seed", "inside <devices>"),
                                       ("port_forwards", "forwarding", "before </domain>")):
        if getattr(job, option) and "${" + placeholder + "}" not in str(template):
            raise LibvirtJobError(name, f"option {option} is set but the template has no "
                                  f"${{{placeholder}}} placeholder: add it {where}")
    try:
        xml = render(str(template), values)
    except (KeyError, ValueError) as err:
        raise LibvirtJobError(name, f"template placeholder {err} is unknown or malformed; "
                              f"known: {', '.join('${' + k + '}' for k in values)}") from None
    try:
        ET.fromstring(xml)
    except ET.ParseError as err:
        raise LibvirtJobError(name, f"the template does not give well-formed XML: {err}") \
            from None
    return xml


def disk_sources(xml: str) -> list[str]:
    """Source files/devices of a domain's ``device='disk'`` disks."""
    found = []
    for el in ET.fromstring(xml).iterfind("devices/disk"):
        if el.get("device", "disk") != "disk":
            continue
        source = el.find("source")
        path = None if source is None else (source.get("file") or source.get("dev"))
        if path:
            found.append(path)
    return found


def delete_disk(job: LibvirtJob, conn: libvirt.virConnect, path: str) -> None:
    """Delete a disk: its pool volume when libvirt knows one, else the file."""
    try:
        vol = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as err:
        if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            with job._calling(f"look up volume {path}"):
                raise
    else:
        with job._calling(f"delete volume {path}"):
            vol.delete(0)
        log.info("%s: deleted volume %s", type(job).__name__, path)
        return
    if os.path.isfile(path):
        os.remove(path)
        log.info("%s: deleted disk file %s", type(job).__name__, path)
