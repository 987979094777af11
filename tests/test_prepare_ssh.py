"""AuthorizeSSHKey and CloudInitSeed (Kanku's PrepareSSH) with real parts.

The seed ISO is read back with pycdlib.  The console method talks to a
getty/login/shell peer on a real pseudo-terminal (tests/fakes/serial_console.py),
whose shell is a real ``/bin/sh`` with a throw-away ``HOME``; the Check is a
real SSH handshake with the real sshd of tests/fakes/sshd.py, which reads
that ``HOME``'s ``~/.ssh/authorized_keys``.  A libvirt test-driver domain with
a port forward stands in only for the domain's *definition*: its forward
points at the loopback sshd, so WaitForAddress probes a real server.
"""

from __future__ import annotations

import getpass
import io
import json
import logging
import os
import pathlib
import stat
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("paramiko")
pycdlib = pytest.importorskip("pycdlib")

from dojobber import DoJobber, Job, JobStatus, RunResult  # noqa: E402
from dojobber.contrib._console import TtyPort, authorize_on_console  # noqa: E402
from dojobber.contrib.prepare_ssh import AuthorizeSSHKey, CloudInitSeed  # noqa: E402
from dojobber.contrib.ssh import RunCommands  # noqa: E402
from dojobber.contrib.ssh_errors import (  # noqa: E402
    ConsoleLoginError,
    ConsoleTimeoutError,
    InvalidSSHOptionError,
    SeedError,
)
from tests.fakes.serial_console import SerialGuest  # noqa: E402
from tests.fakes.sshd import Sshd, keygen, sshd_available  # noqa: E402

PASSWORD = "s3cret-Pa55"
USER = getpass.getuser()


def run(root: type[Job]) -> RunResult:
    dj = DoJobber()
    dj.configure(root, default_tries=1, default_retry_delay=0)
    return dj.checknrun()


@pytest.fixture
def key(tmp_path: pathlib.Path) -> pathlib.Path:
    return keygen(tmp_path / "id_ed25519")


# -- the seed ----------------------------------------------------------------
def read_iso(path: pathlib.Path) -> tuple[str, dict[str, bytes], dict[str, bytes]]:
    """(label, files by Rock Ridge name, files by Joliet name), read with pycdlib."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        by_rr, by_joliet = {}, {}
        for name in ("meta-data", "user-data"):
            for kind, found in (("rr_path", by_rr), ("joliet_path", by_joliet)):
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, **{kind: "/" + name})
                found[name] = out.getvalue()
        return label, by_rr, by_joliet
    finally:
        iso.close()


def cloud_config(data: bytes) -> dict[str, Any]:
    head, body = data.decode().split("\n", 1)
    assert head == "#cloud-config"
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_seed_holds_the_key_and_a_rerun_keeps_it(tmp_path: pathlib.Path,
                                                 key: pathlib.Path) -> None:
    iso = tmp_path / "vm1-seed.iso"
    Seed = CloudInitSeed.variant("seed", path=str(iso), hostname="vm1",
                                 key_filename=str(key), user_data={"timezone": "UTC"})
    first = run(Seed)
    assert first.jobs["seed"].status is JobStatus.CHANGED
    label, files, joliet = read_iso(iso)
    assert label == "cidata"
    assert files == joliet
    config = cloud_config(files["user-data"])
    public = (tmp_path / "id_ed25519.pub").read_text().strip()
    assert config["ssh_authorized_keys"] == [public]
    assert config["disable_root"] is False
    assert config["hostname"] == "vm1" and config["timezone"] == "UTC"
    meta = json.loads(files["meta-data"])
    assert meta["local-hostname"] == "vm1"
    assert meta["instance-id"] == first.jobs["seed"].result["instance_id"]
    assert not (tmp_path / "vm1-seed.iso.part").exists()

    before = os.stat(iso)
    second = run(Seed)
    assert second.jobs["seed"].status is JobStatus.OK
    after = os.stat(iso)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_changed_key_rewrites_the_seed_as_a_new_instance(
    tmp_path: pathlib.Path, key: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    iso = tmp_path / "seed.iso"
    first = run(CloudInitSeed.variant("seed", path=str(iso), hostname="vm1",
                                      key_filename=str(key)))
    other = keygen(tmp_path / "other")
    caplog.set_level(logging.WARNING, "dojobber.contrib.ssh")
    second = run(CloudInitSeed.variant("seed", path=str(iso), hostname="vm1",
                                       key_filename=str(other)))
    assert second.jobs["seed"].status is JobStatus.CHANGED
    assert second.jobs["seed"].result["instance_id"] != first.jobs["seed"].result["instance_id"]
    assert cloud_config(read_iso(iso)[1]["user-data"])["ssh_authorized_keys"] == [
        (tmp_path / "other.pub").read_text().strip()]
    assert "power cycle" in caplog.text


def test_seed_for_another_user_creates_it_with_the_key(tmp_path: pathlib.Path,
                                                       key: pathlib.Path) -> None:
    iso = tmp_path / "seed.iso"
    public = (tmp_path / "id_ed25519.pub").read_text().strip()
    run(CloudInitSeed.variant("seed", path=str(iso), hostname="h", username="kanku",
                              public_key=public))
    users = cloud_config(read_iso(iso)[1]["user-data"])["users"]
    assert users[0] == "default"
    assert users[1]["name"] == "kanku" and users[1]["ssh_authorized_keys"] == [public]


def test_seed_without_a_key_names_the_options(tmp_path: pathlib.Path) -> None:
    result = run(CloudInitSeed.variant("seed", path=str(tmp_path / "s.iso"), hostname="h"))
    err = result.jobs["seed"].exception
    assert isinstance(err, SeedError)
    assert "seed" in str(err) and "key_filename" in str(err) and "public_key" in str(err)
    assert not (tmp_path / "s.iso").exists()


# -- the console dialogue on a real pty ---------------------------------------
def public_line(key: pathlib.Path) -> str:
    return pathlib.Path(f"{key}.pub").read_text().strip()


def assert_authorized(home: pathlib.Path, key: pathlib.Path) -> None:
    ssh_dir = home / ".ssh"
    assert stat.S_IMODE(os.stat(ssh_dir).st_mode) == 0o700
    keys = ssh_dir / "authorized_keys"
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert keys.read_text().splitlines().count(public_line(key)) == 1


def test_console_login_late_prompt_writes_the_key_once(
    tmp_path: pathlib.Path, key: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "dojobber.contrib.ssh")
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, boot_delay=1.0,
                     prompt_on_enter=True) as guest:
        for _ in range(2):  # a second time: the key is not added twice
            with TtyPort(guest.device) as port:
                was_in = authorize_on_console(port, "key job", USER, PASSWORD,
                                              public_line(key), 60.0)
            assert was_in is False
        assert_authorized(guest.home, key)
        typed = guest.transcript()
    assert typed.count(PASSWORD.encode()) == 2
    assert PASSWORD not in caplog.text
    assert "authorized the key" in caplog.text


def test_console_already_logged_in_is_used(tmp_path: pathlib.Path,
                                           key: pathlib.Path) -> None:
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, logged_in=True) as guest:
        with TtyPort(guest.device) as port:
            assert authorize_on_console(port, "j", USER, PASSWORD, public_line(key), 60.0)
        assert_authorized(guest.home, key)
        assert PASSWORD.encode() not in guest.transcript()


def test_console_of_another_user_is_logged_out_first(tmp_path: pathlib.Path,
                                                     key: pathlib.Path) -> None:
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, logged_in=True,
                     shell_user="somebody") as guest:
        with TtyPort(guest.device) as port:
            assert not authorize_on_console(port, "j", USER, PASSWORD, public_line(key), 60.0)
        assert_authorized(guest.home, key)
        assert b"exit\r" in guest.transcript()


def test_wrong_password_is_a_login_error_without_the_password(
    tmp_path: pathlib.Path, key: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "dojobber.contrib.ssh")
    wrong = "not-the-Pa55word"
    with SerialGuest(tmp_path / "guest", USER, PASSWORD) as guest:
        with TtyPort(guest.device) as port:
            with pytest.raises(ConsoleLoginError) as caught:
                authorize_on_console(port, "key job", USER, wrong, public_line(key), 60.0)
        assert not (guest.home / ".ssh").exists()
    err = caught.value
    assert "key job" in str(err) and "console_password" in str(err)
    assert "Login incorrect" in str(err)
    assert wrong not in str(err) and wrong not in caplog.text


def test_silent_console_times_out_naming_the_getty(tmp_path: pathlib.Path,
                                                   key: pathlib.Path) -> None:
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, boot_delay=30.0) as guest:
        with TtyPort(guest.device) as port:
            with pytest.raises(ConsoleTimeoutError, match=r"sent nothing.*getty"):
                authorize_on_console(port, "j", USER, PASSWORD, public_line(key), 2.0)


def test_console_that_only_echoes_enter_names_the_missing_getty(
        tmp_path: pathlib.Path, key: pathlib.Path) -> None:
    """A guest whose serial getty never started (it timed out waiting for
    /dev/ttyS0 on a starved host) echoes Enter and says nothing else."""
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, echo_only=True) as guest:
        with TtyPort(guest.device) as port:
            with pytest.raises(ConsoleTimeoutError) as caught:
                authorize_on_console(port, "j", USER, PASSWORD, public_line(key), 5.0)
        assert b"\r" in guest.transcript()
    message = str(caught.value)
    assert "only echoed Enter" in message and "serial-getty@ttyS0" in message
    assert "sent nothing" not in message


# -- the job: console method + Check over real SSH ----------------------------
@pytest.fixture
def guest_and_sshd(tmp_path: pathlib.Path, key: pathlib.Path) -> Iterator[tuple[SerialGuest,
                                                                                Sshd]]:
    if not sshd_available():
        pytest.skip("needs openssh-server")
    with SerialGuest(tmp_path / "guest", USER, PASSWORD, prompt_on_enter=True) as guest:
        keys = guest.home / ".ssh" / "authorized_keys"
        with Sshd(tmp_path / "sshd", client_key=key, authorized_keys=keys) as sshd:
            yield guest, sshd


def key_job(sshd: Sshd, key: pathlib.Path, known: pathlib.Path, **kw: Any) -> Any:
    return AuthorizeSSHKey.variant(
        "authorize", method="console", console_device=kw.pop("device"), host=sshd.host,
        port=sshd.port, username=USER, key_filename=str(key), known_hosts=str(known),
        host_key_policy="accept-new", console_password=PASSWORD, connect_retry_for=10,
        timeout=60, **kw)


def test_console_method_converges_and_a_rerun_is_one_handshake(
    guest_and_sshd: tuple[SerialGuest, Sshd], key: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    guest, sshd = guest_and_sshd
    known = tmp_path / "known_hosts"
    Key = key_job(sshd, key, known, device=guest.device)
    After = RunCommands.variant("after", address_from=Key, username=USER,
                                key_filename=str(key), known_hosts=str(known),
                                allow_agent=False, look_for_keys=False,
                                commands=["true"],
                                check_command=f"test -s {guest.home}/.ssh/authorized_keys")
    first = run(After)
    assert first.jobs["authorize"].status is JobStatus.CHANGED, first.jobs["authorize"]
    assert first.jobs["after"].status is JobStatus.OK
    assert first.jobs["authorize"].result == {
        "host": "127.0.0.1", "ip": "127.0.0.1", "port": sshd.port, "username": USER,
        "method": "console"}
    assert_authorized(guest.home, key)
    assert f"[127.0.0.1]:{sshd.port}" in known.read_text()
    typed = len(guest.transcript())

    second = run(After)
    assert {r.status for r in second.jobs.values()} == {JobStatus.OK}
    assert len(guest.transcript()) == typed  # the console was not touched


def test_job_with_a_wrong_password_fails_naming_the_option(
    guest_and_sshd: tuple[SerialGuest, Sshd], key: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    guest, sshd = guest_and_sshd
    Key = key_job(sshd, key, tmp_path / "kh", device=guest.device)
    Wrong = Key.variant("authorize", console_password="nope-nope")
    err = run(Wrong).jobs["authorize"].exception
    assert isinstance(err, ConsoleLoginError)
    assert "authorize" in str(err) and "nope-nope" not in str(err)


def test_options_are_checked_when_the_variant_is_made() -> None:
    with pytest.raises(InvalidSSHOptionError, match="method"):
        AuthorizeSSHKey.variant("a", method="telepathy")
    with pytest.raises(InvalidSSHOptionError, match="console_password"):
        AuthorizeSSHKey.variant("a", method="console", domain="vm1")
    with pytest.raises(InvalidSSHOptionError, match="domain"):
        AuthorizeSSHKey.variant("a", method="console", console_password="x")
    unnamed = AuthorizeSSHKey.variant(method="console", domain="vm1", console_password="pw-9")
    assert "pw-9" not in unnamed.__name__ and "***" in unnamed.__name__



# -- check mode ----------------------------------------------------------------
def test_check_mode_plans_the_seed_and_the_key(
    guest_and_sshd: tuple[SerialGuest, Sshd], key: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A dry run says which seed would be written and how the key would get
    onto the guest; the console is not touched, no file is written, and the
    password appears nowhere."""
    guest, sshd = guest_and_sshd
    iso = tmp_path / "vm1-seed.iso"
    Seed = CloudInitSeed.variant("seed", path=str(iso), hostname="vm1", key_filename=str(key))
    Key = key_job(sshd, key, tmp_path / "known_hosts", device=guest.device)
    Both = type("Both", (Job,), {"DEPS": [Seed, Key], "Check": lambda self: None})
    dj = DoJobber()
    dj.configure(Both, no_act=True)
    result = dj.checknrun()
    assert result.jobs["seed"].status is JobStatus.WOULD_RUN
    assert result.jobs["seed"].plan == (
        f"write the cloud-init seed {iso} (user root, host name vm1, your public key); "
        f"now: seed: {iso} does not exist")
    where = f"{USER}@127.0.0.1:{sshd.port}"
    assert result.jobs["authorize"].plan == (
        f"log in on {guest.device} as {USER} and add {key} to ~/.ssh/authorized_keys "
        f"(waiting up to 60s for a login prompt), so that SSH to {where} works")
    cloud = AuthorizeSSHKey.variant("cloud", method="cloud-init", host=sshd.host,
                                    port=sshd.port, username=USER, key_filename=str(key),
                                    known_hosts=str(tmp_path / "known_hosts"),
                                    host_key_policy="accept-new", connect_retry_for=0,
                                    timeout=30)
    planned = run_dry(cloud).jobs["cloud"]
    assert planned.plan == (f"wait up to 30s for SSH to {where} with {key} to work "
                            "(cloud-init writes the key at boot from the seed)")
    assert not iso.exists() and guest.transcript() == b""
    assert not (guest.home / ".ssh" / "authorized_keys").exists()
    assert PASSWORD not in repr([r.plan for r in result.jobs.values()])


def run_dry(root: type[Job]) -> RunResult:
    dj = DoJobber()
    dj.configure(root, no_act=True)
    return dj.checknrun()


def test_the_console_method_alone_prints_no_libvirt_errors(tmp_path: pathlib.Path) -> None:
    """Closing libvirt's console stream fails the reader's last recv(); with
    only the console module imported (no dojobber.contrib.libvirt) libvirt
    must not print that, or any error, to stderr.  A fresh interpreter, so
    no other module has silenced libvirt before."""
    pytest.importorskip("libvirt")
    code = ("import libvirt, dojobber.contrib._libvirtconsole\n"
            "try:\n"
            f"    libvirt.open('test://{tmp_path}/missing.xml')\n"
            "except libvirt.libvirtError as err:\n"
            "    print('raised', err.get_error_code())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.startswith("raised")
    assert "libvirt:" not in done.stderr
