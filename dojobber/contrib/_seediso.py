"""cloud-init NoCloud seed images, made and read in pure Python (pycdlib).

A NoCloud seed is an ISO 9660 image labelled ``cidata`` holding the files
``meta-data`` and ``user-data`` (and optionally ``network-config``); cloud-init
finds it by its label at boot.  The files are written with Rock Ridge and
Joliet names so every Linux guest sees their real (lowercase, dashed) names.

The user-data is ``#cloud-config`` followed by JSON, which is YAML too; the
instance id is derived from the content, so a changed seed is a new instance
to cloud-init (it applies the seed again at the guest's next boot).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["LABEL", "SeedFiles", "read_seed", "seed_files", "write_seed"]

#: The volume label cloud-init's NoCloud looks for.
LABEL = "cidata"
#: ISO 9660 level-1 names of the files (8.3, upper case).
_ISO_NAMES = {"meta-data": "/METADATA.;1", "user-data": "/USERDATA.;1",
              "network-config": "/NETWORKC.;1"}

SeedFiles = dict[str, bytes]


def user_data(keys: Sequence[str], username: str, hostname: str,
              extra: Mapping[str, Any] | None = None) -> bytes:
    """The ``#cloud-config`` user-data authorizing ``keys`` for ``username``.

    For root, ``disable_root: false`` and top-level ``ssh_authorized_keys``
    (cloud-init then writes the keys to root's file without the "log in as
    the default user" prefix); for another user, an entry in ``users`` with
    the keys and password-less sudo.  ``extra`` cloud-config keys are added
    last and win over these.
    """
    config: dict[str, Any] = {"hostname": hostname, "ssh_authorized_keys": list(keys)}
    if username == "root":
        config["disable_root"] = False
    else:
        config["users"] = ["default", {
            "name": username, "ssh_authorized_keys": list(keys), "lock_passwd": True,
            "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL",
        }]
    config.update(extra or {})
    return ("#cloud-config\n" + json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def seed_files(keys: Sequence[str], username: str, hostname: str,
               extra: Mapping[str, Any] | None = None,
               network_config: Mapping[str, Any] | None = None) -> SeedFiles:
    """``meta-data`` / ``user-data`` (/ ``network-config``) of a seed."""
    files = {"user-data": user_data(keys, username, hostname, extra)}
    if network_config is not None:
        files["network-config"] = (json.dumps(dict(network_config), indent=2,
                                              sort_keys=True) + "\n").encode()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    digest.update(hostname.encode())
    meta = {"instance-id": "dojobber-" + digest.hexdigest()[:16], "local-hostname": hostname}
    files["meta-data"] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    return files


def write_seed(path: str, files: SeedFiles) -> None:
    """Write the seed ISO to ``path`` (via ``path.part``, renamed into place)."""
    import pycdlib

    unknown = set(files) - set(_ISO_NAMES)
    if unknown:
        raise ValueError(f"a NoCloud seed holds only {', '.join(_ISO_NAMES)}, "
                         f"not {', '.join(sorted(unknown))}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    try:
        for name in sorted(files):
            data = files[name]
            iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name,
                       joliet_path="/" + name)
        part = path + ".part"
        try:
            iso.write(part)
            os.replace(part, path)
        except BaseException:
            if os.path.exists(part):
                os.remove(part)
            raise
    finally:
        iso.close()


def read_seed(path: str) -> tuple[str, SeedFiles]:
    """(volume label, files by Rock Ridge name) of a seed ISO.

    Raises OSError when ``path`` cannot be read and ValueError when it is not
    an ISO 9660 image."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(path)
    except PyCdlibException as err:
        raise ValueError(f"{path} is not an ISO 9660 image: {err}") from None
    try:
        label = iso.pvd.volume_identifier.decode("ascii", "replace").strip()
        found: SeedFiles = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dir():
                continue
            name = iso.full_path_from_dirrecord(child, rockridge=True).lstrip("/")
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            found[name] = out.getvalue()
        return label, found
    finally:
        iso.close()
