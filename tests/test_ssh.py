"""The bundled SSH jobs against a real OpenSSH sshd on 127.0.0.1.

One sshd serves the whole module; tests that need another server state
(late start, other host key) start their own on loopback.
"""

from __future__ import annotations

import concurrent.futures
import logging
import pathlib
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("paramiko")

from dojobber import Job, JobStatus, Listener, NoActError, RunResult
from dojobber.contrib._runscope import publish
from dojobber.contrib.ssh import CopyFiles, RunCommands
from dojobber.contrib.ssh_errors import (
    CheckCommandError,
    CommandFailedError,
    CommandTimeoutError,
    HostKeyChangedError,
    HostKeyUnknownError,
    InvalidSSHOptionError,
    NoHostError,
    SSHAuthError,
    SSHConnectError,
    SSHJobError,
)
from tests.fakes.sshd import Sshd, free_port, keygen, sshd_available
from tests.helpers import run_once

pytestmark = pytest.mark.skipif(not sshd_available(), reason="needs openssh-server")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def known_hosts(tmp_path: pathlib.Path, sshd: Sshd) -> pathlib.Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line())
    return path


def conn_opts(server: Sshd, known_hosts: pathlib.Path, **kw: Any) -> dict[str, Any]:
    opts: dict[str, Any] = dict(
        host=server.host, port=server.port, username=server.username,
        key_filename=str(server.client_key), allow_agent=False, look_for_keys=False,
        known_hosts=str(known_hosts), connect_retry_for=0, connect_timeout=5,
    )
    opts.update(kw)
    return opts


class Logs(Listener):
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        self.records.append((job, phase, record.getMessage()))


def status(result: RunResult, name: str) -> JobStatus:
    return result.jobs[name].status


# -- commands ------------------------------------------------------------------
def test_commands_run_with_environment_and_log_their_output(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "dojobber.contrib.ssh")
    out = tmp_path / "out.txt"
    Job1 = RunCommands.variant(
        "setup", **conn_opts(sshd, known_hosts),
        environment={"GREETING": "it's \"quoted\" $HOME", "N": "42"},
        commands=[f'printf "%s/%s\\n" "$GREETING" "$N" > {out}', f"cat {out}",
                  "echo to-stderr >&2"],
    )
    logs = Logs()
    result = run_once(Job1, listeners=[logs])
    assert status(result, "setup") is JobStatus.CHANGED
    assert out.read_text() == "it's \"quoted\" $HOME/42\n"
    lines = [(job, phase, msg) for job, phase, msg in logs.records if job == "setup"]
    assert ("setup", "run", "[127.0.0.1] it's \"quoted\" $HOME/42") in lines
    assert ("setup", "run", "[127.0.0.1 stderr] to-stderr") in lines
    assert ("setup", "run", f"[127.0.0.1] $ cat {out}") in lines


def test_failing_command_stops_the_list(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    after = tmp_path / "after"
    Job1 = RunCommands.variant(
        "setup", **conn_opts(sshd, known_hosts),
        commands=["echo first", "echo doomed >&2; echo last words; exit 3", f"touch {after}"],
    )
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, CommandFailedError)
    assert err.status == 3
    assert err.command == "echo doomed >&2; echo last words; exit 3"
    assert set(err.tail[-2:]) == {"doomed", "last words"}
    assert "exited with status 3" in str(err) and "last words" in str(err)
    assert not after.exists()


def test_converged_check_command_runs_nothing(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    marker, ran = tmp_path / "marker", tmp_path / "ran"
    Job1 = RunCommands.variant(
        "setup", **conn_opts(sshd, known_hosts),
        commands=[f"echo x >> {ran}", f"touch {marker}"], check_command=f"test -e {marker}",
    )
    assert status(run_once(Job1), "setup") is JobStatus.CHANGED
    assert ran.read_text() == "x\n"
    assert status(run_once(Job1), "setup") is JobStatus.OK
    assert ran.read_text() == "x\n"


def test_check_command_still_failing_after_the_commands(
    sshd: Sshd, known_hosts: pathlib.Path
) -> None:
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, known_hosts),
                               commands=["true"], check_command="echo nope; exit 1")
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, CheckCommandError)
    assert err.status == 1 and "nope" in str(err)


def test_without_check_command_it_is_run_only(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    ran = tmp_path / "ran"
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, known_hosts),
                               commands=[f"echo x >> {ran}"])
    assert status(run_once(Job1), "setup") is JobStatus.CHANGED
    assert status(run_once(Job1), "setup") is JobStatus.CHANGED
    assert ran.read_text() == "x\nx\n"
    result = run_once(Job1, no_act=True)
    assert isinstance(result.jobs["setup"].exception, NoActError)
    assert ran.read_text() == "x\nx\n"


def test_command_timeout(sshd: Sshd, known_hosts: pathlib.Path) -> None:
    # The timeout leaves a loaded machine time to start the shell and echo
    # (2 s was not always enough with two test workers on 2 busy cores).
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, known_hosts), timeout=6.0,
                               commands=["echo started; sleep 60"])
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, CommandTimeoutError)
    assert err.timeout == 6.0 and err.tail == ["started"]


def test_one_connection_per_host_closed_at_cleanup(
    sshd: Sshd, known_hosts: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "paramiko.transport")
    opts = conn_opts(sshd, known_hosts)
    A = RunCommands.variant("a", **opts, commands=["true"])
    B = RunCommands.variant("b", **opts, commands=["true"], check_command="false || true")
    pools: list[Any] = []

    class Both(Job):
        DEPS = [A, B]

        def Check(self) -> None:
            assert self.global_storage is not None
            pools.append(self.global_storage["dojobber.contrib.ssh:connections"])

    result = run_once(Both)
    assert {status(result, n) for n in "ab"} <= {JobStatus.OK, JobStatus.CHANGED}
    logins = [r for r in caplog.records if "Authentication (publickey) successful" in
              r.getMessage()]
    assert len(logins) == 1
    assert len(pools) == 1 and len(pools[0]) == 0  # closed by Cleanup


def test_parallel_jobs_share_one_connection(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "paramiko.transport")
    opts = conn_opts(sshd, known_hosts)
    jobs = [RunCommands.variant(f"j{i}", **opts, commands=[f"sleep 0.2; touch {tmp_path}/{i}"])
            for i in range(3)]
    All = type("All", (Job,), {"DEPS": jobs, "Check": lambda self: None})
    result = run_once(All, workers=3)
    assert {status(result, f"j{i}") for i in range(3)} == {JobStatus.CHANGED}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1", "2"]
    logins = [r for r in caplog.records if "Authentication (publickey) successful" in
              r.getMessage()]
    assert len(logins) == 1


def test_jobs_run_in_another_process(sshd: Sshd, known_hosts: pathlib.Path,
                                     tmp_path: pathlib.Path) -> None:
    """Results, errors and the job context travel back from a process pool."""
    opts = conn_opts(sshd, known_hosts)
    marker = tmp_path / "marker"
    A = RunCommands.variant("a", **opts, commands=[f"touch {marker}"],
                            check_command=f"test -e {marker}")
    B = RunCommands.variant("b", **opts, DEPS=[A], commands=["exit 7"])
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        result = run_once(B, executor=pool)
    assert status(result, "a") is JobStatus.CHANGED and marker.exists()
    err = result.jobs["b"].exception
    assert isinstance(err, CommandFailedError) and err.status == 7


@pytest.mark.parametrize("error", [
    NoHostError("j", "no host"),
    SSHConnectError("j", "root@h:22", "refused", 3.0),
    SSHAuthError("j", "root@h:22", "denied"),
    HostKeyUnknownError("j", "h", "SHA256:x", "/kh"),
    HostKeyChangedError("j", "h", "SHA256:x", "SHA256:y", "/kh"),
    CommandFailedError("j", "h", "false", 1, ["a", "b"]),
    CommandTimeoutError("j", "h", "sleep 9", 1.5, []),
    CheckCommandError("j", "h", "test -e x", 1, ["x"]),
    InvalidSSHOptionError("j", "port", "x", "a number"),
])
def test_errors_pickle(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)


# -- where to connect ----------------------------------------------------------
def publisher(name: str, ip: str) -> type[Job]:
    def Check(self: Job) -> None:
        publish(self.global_storage, name, {"ip": ip}, {"ip": ip})

    return type(name, (Job,), {"Check": Check})


def test_host_from_a_published_address(sshd: Sshd, known_hosts: pathlib.Path) -> None:
    Ip = publisher("Ip", sshd.host)
    opts = conn_opts(sshd, known_hosts)
    del opts["host"]
    Job1 = RunCommands.variant("setup", **opts, address_from=Ip, commands=["true"])
    assert list(Job1.DEPS) == [Ip]
    result = run_once(Job1)
    assert status(result, "setup") is JobStatus.CHANGED
    assert result.jobs["setup"].result["host"] == sshd.host


def test_host_from_the_one_dependency_with_an_address(
    sshd: Sshd, known_hosts: pathlib.Path
) -> None:
    opts = conn_opts(sshd, known_hosts)
    del opts["host"]
    One = RunCommands.variant("one", **opts, DEPS=[publisher("Ip", sshd.host)],
                              commands=["true"])
    assert status(run_once(One), "one") is JobStatus.CHANGED
    Two = RunCommands.variant("two", **opts, commands=["true"],
                              DEPS=[publisher("A", sshd.host), publisher("B", "127.0.0.3")])
    err = run_once(Two).jobs["two"].exception
    assert isinstance(err, NoHostError) and "A, B" in str(err)


def test_explicit_host_wins_over_the_published_address(
    sshd: Sshd, known_hosts: pathlib.Path
) -> None:
    # The published address is loopback too, where nothing listens: were it
    # used, the connect would be refused.
    Ip = publisher("Ip", "127.0.0.3")
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, known_hosts), address_from=Ip,
                               commands=["true"])
    result = run_once(Job1)
    assert status(result, "setup") is JobStatus.CHANGED
    assert result.jobs["setup"].result["host"] == "127.0.0.1"


def test_no_host_is_a_named_error(sshd: Sshd, known_hosts: pathlib.Path) -> None:
    opts = conn_opts(sshd, known_hosts)
    del opts["host"]
    err = run_once(RunCommands.variant("setup", **opts, commands=["true"])).jobs["setup"].exception
    assert isinstance(err, NoHostError) and "address_from" in str(err)


# -- host keys -----------------------------------------------------------------
def test_unknown_host_key_is_refused_by_default(
    sshd: Sshd, tmp_path: pathlib.Path
) -> None:
    empty = tmp_path / "known_hosts"
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, empty), commands=["true"])
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, HostKeyUnknownError)
    assert err.fingerprint.startswith("SHA256:") and "accept-new" in str(err)
    assert not empty.exists()


def test_accept_new_records_the_key_then_verify_accepts_it(
    sshd: Sshd, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "dir" / "known_hosts"
    New = RunCommands.variant("setup", **conn_opts(sshd, path, host_key_policy="accept-new"),
                              commands=["true"])
    assert status(run_once(New), "setup") is JobStatus.CHANGED
    assert path.read_text() == sshd.known_hosts_line()
    Verify = RunCommands.variant("setup", **conn_opts(sshd, path), commands=["true"])
    assert status(run_once(Verify), "setup") is JobStatus.CHANGED
    assert path.read_text() == sshd.known_hosts_line()


@pytest.mark.parametrize("policy", ["verify", "accept-new"])
def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: pathlib.Path, policy: str) -> None:
    other = keygen(tmp_path / "other_host_key")
    text = " ".join(pathlib.Path(f"{other}.pub").read_text().split()[:2])
    path = tmp_path / "known_hosts"
    path.write_text(f"[{sshd.host}]:{sshd.port} {text}\n")
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, path, host_key_policy=policy),
                               commands=["true"])
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, HostKeyChangedError)
    assert err.fingerprint != err.expected and "CHANGED" in str(err)
    assert path.read_text() == f"[{sshd.host}]:{sshd.port} {text}\n"


def test_insecure_mode_connects_and_says_so(
    sshd: Sshd, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "known_hosts"
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, path, host_key_policy="insecure"),
                               commands=["true"])
    assert status(run_once(Job1), "setup") is JobStatus.CHANGED
    assert "NOT verified" in caplog.text
    assert not path.exists()


def test_wrong_key_is_an_auth_error(
    sshd: Sshd, known_hosts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    stranger = keygen(tmp_path / "stranger")
    Job1 = RunCommands.variant("setup", **conn_opts(sshd, known_hosts,
                               key_filename=str(stranger)), commands=["true"])
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, SSHAuthError) and "authorized_keys" in str(err)
    from dojobber import GiveUp
    from dojobber.contrib import ssh_errors

    assert isinstance(err, GiveUp)  # a person must act: converge() stops
    assert issubclass(ssh_errors.HostKeyChangedError, GiveUp)
    assert issubclass(ssh_errors.InvalidSSHOptionError, GiveUp)
    assert not issubclass(ssh_errors.SSHConnectError, GiveUp)  # (a guest still booting)
    assert not issubclass(ssh_errors.CommandTimeoutError, GiveUp)


# -- connecting while the machine boots ----------------------------------------
def test_connect_is_retried_until_sshd_is_up(
    sshd: Sshd, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dojobber.contrib.ssh")
    late = Sshd(tmp_path / "late", host_key=sshd.host_key, client_key=sshd.client_key)
    known = tmp_path / "known_hosts"
    known.write_text(late.known_hosts_line())
    timer = threading.Timer(0.7, late.start)
    Job1 = RunCommands.variant(
        "setup", **conn_opts(late, known, connect_retry_for=20, retry_interval=0.2),
        commands=["true"])
    timer.start()
    try:
        result = run_once(Job1)
    finally:
        timer.join(20)
        late.stop()
    assert status(result, "setup") is JobStatus.CHANGED
    assert "not reachable yet" in caplog.text


def test_connect_gives_up_after_the_retry_window(tmp_path: pathlib.Path) -> None:
    port = free_port()  # nothing listens here
    Job1 = RunCommands.variant("setup", host="127.0.0.1", port=port, commands=["true"],
                               known_hosts=str(tmp_path / "kh"), connect_retry_for=0.6,
                               retry_interval=0.2, allow_agent=False, look_for_keys=False)
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, SSHConnectError) and str(port) in str(err)


# -- files ---------------------------------------------------------------------
@pytest.mark.slow
def test_copy_is_idempotent(sshd: Sshd, known_hosts: pathlib.Path,
                            tmp_path: pathlib.Path) -> None:
    local = tmp_path / "app.conf"
    local.write_bytes(b"setting = 1\n" * 1000)
    remote = tmp_path / "remote" / "etc" / "app.conf"
    Copy = CopyFiles.variant("copy", **conn_opts(sshd, known_hosts), mode=0o640,
                             files=[(str(local), str(remote))])
    first = run_once(Copy)
    assert status(first, "copy") is JobStatus.CHANGED
    assert remote.read_bytes() == local.read_bytes()
    assert remote.stat().st_mode & 0o777 == 0o640
    assert first.jobs["copy"].result["files"][str(remote)] == \
        __import__("hashlib").sha256(local.read_bytes()).hexdigest()
    mtime = remote.stat().st_mtime_ns
    assert status(run_once(Copy), "copy") is JobStatus.OK
    assert remote.stat().st_mtime_ns == mtime

    local.write_bytes(b"setting = 2\n")
    assert status(run_once(Copy), "copy") is JobStatus.CHANGED
    assert remote.read_bytes() == b"setting = 2\n"
    remote.chmod(0o600)
    assert status(run_once(Copy), "copy") is JobStatus.CHANGED
    assert remote.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in remote.parent.iterdir()] == ["app.conf"]


def test_password_stays_out_of_made_up_names() -> None:
    made = RunCommands.variant(host="127.0.0.1", password="s3cret", commands=["true"])
    assert "s3cret" not in made.__name__
    assert "password=***" in made.__name__


def test_missing_local_file_is_named(sshd: Sshd, known_hosts: pathlib.Path,
                                     tmp_path: pathlib.Path) -> None:
    Copy = CopyFiles.variant("copy", **conn_opts(sshd, known_hosts),
                             files=[(str(tmp_path / "nope"), str(tmp_path / "remote"))])
    err = run_once(Copy).jobs["copy"].exception
    assert isinstance(err, SSHJobError) and "nope does not exist" in str(err)
    assert not (tmp_path / "remote").exists()


def test_options_are_checked_when_the_variant_is_made() -> None:
    with pytest.raises(InvalidSSHOptionError, match="host_key_policy"):
        RunCommands.variant("x", commands=["true"], host_key_policy="yolo")
    with pytest.raises(InvalidSSHOptionError, match="commands"):
        RunCommands.variant("x", commands="reboot")
    with pytest.raises(InvalidSSHOptionError, match="environment"):
        RunCommands.variant("x", commands=["true"], environment={"A B": "1"})


# -- faults and hostile input -------------------------------------------------
def test_a_closed_port_fails_at_once_with_a_named_error(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dojobber.contrib.ssh")
    port = free_port()  # nothing listens here; the defaults do not wait for it
    Job1 = RunCommands.variant("setup", host="127.0.0.1", port=port, commands=["true"],
                               known_hosts=str(tmp_path / "kh"), allow_agent=False,
                               look_for_keys=False)
    err = run_once(Job1).jobs["setup"].exception
    assert isinstance(err, SSHConnectError) and err.tries == 1
    assert err.reason == "connection refused (nothing listens on that port)"
    assert f"127.0.0.1:{port} (tried once): connection refused" in str(err)
    assert "connect_retry_for" in str(err)
    assert "not reachable yet" not in caplog.text  # no retry loop


@pytest.mark.parametrize(("option", "value"), [
    ("connect_timeout", 0), ("connect_timeout", float("inf")), ("connect_retry_for", -1),
    ("retry_interval", float("nan")), ("port", 0), ("port", 70000), ("port", "22"),
    ("timeout", -5), ("tail_lines", 1.5),
])
def test_numeric_options_are_checked_when_the_variant_is_made(
        option: str, value: object) -> None:
    with pytest.raises(InvalidSSHOptionError, match=f"option {option}="):
        RunCommands.variant("setup", host="127.0.0.1", commands=["true"], **{option: value})


def test_accept_new_appends_after_a_last_line_without_newline(
        sshd: Sshd, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "known_hosts"
    other = "otherhost ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDojobberTestKeyNotRealAtAllXXXXXXXXXXXX"
    path.write_text(other)  # no trailing newline
    New = RunCommands.variant("setup", **conn_opts(sshd, path, host_key_policy="accept-new"),
                              commands=["true"])
    assert run_once(New).jobs["setup"].status is JobStatus.CHANGED
    lines = path.read_text().splitlines()
    assert lines[0] == other
    assert lines[1].startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    Verify = RunCommands.variant("setup", **conn_opts(sshd, path), commands=["true"])
    assert run_once(Verify).jobs["setup"].status is JobStatus.CHANGED  # the entry is whole


def test_no_sftp_subsystem_is_named(tmp_path: pathlib.Path) -> None:
    with Sshd(tmp_path / "nosftp", sftp=False) as server:
        known = tmp_path / "kh"
        known.write_text(server.known_hosts_line())
        local = tmp_path / "a.conf"
        local.write_text("x")
        Copy = CopyFiles.variant("copy", **conn_opts(server, known),
                                 files=[(str(local), str(tmp_path / "remote.conf"))])
        err = run_once(Copy).jobs["copy"].exception
    assert isinstance(err, SSHJobError)
    assert "has no SFTP" in str(err) and "Subsystem sftp" in str(err)


def test_a_key_passphrase_is_never_sent_as_a_login_password(tmp_path: pathlib.Path) -> None:
    phrase = "s3cret-phrase"
    locked = keygen(tmp_path / "locked_ed25519", passphrase=phrase)
    with Sshd(tmp_path / "pw", client_key=locked, password_auth=True,
              log_level="DEBUG1") as server:
        known = tmp_path / "kh"
        known.write_text(server.known_hosts_line())
        # The right passphrase opens the key: a login with it.
        Ok = RunCommands.variant("ok", **conn_opts(server, known, key_filename=str(locked),
                                                   passphrase=phrase), commands=["true"])
        assert run_once(Ok).jobs["ok"].status is JobStatus.CHANGED
        # A key the server refuses: the passphrase must not be tried as a password.
        refused = keygen(tmp_path / "refused_ed25519", passphrase=phrase)
        No = RunCommands.variant("no", **conn_opts(server, known, key_filename=str(refused),
                                                   passphrase=phrase), commands=["true"])
        err = run_once(No).jobs["no"].exception
        assert isinstance(err, SSHAuthError)
        log = server.log.read_text()
    assert "method publickey" in log  # the log shows the methods clients try
    assert "method password" not in log


# -- check mode ------------------------------------------------------------
def test_check_mode_plans_commands_and_copies(sshd: Sshd, known_hosts: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    """A dry run says which commands would run and which files would be
    copied (only those that differ); nothing runs, nothing is copied."""
    ran = tmp_path / "ran"
    where = f"{sshd.username}@{sshd.host}:{sshd.port}"
    Setup = RunCommands.variant("setup", **conn_opts(sshd, known_hosts),
                                environment={"TOKEN": "s3cret-value"},
                                check_command=f"test -e {ran}",
                                commands=[f"echo one >> {ran}", "echo two"])
    result = run_once(Setup, no_act=True)
    assert result.jobs["setup"].status is JobStatus.WOULD_RUN
    assert result.jobs["setup"].plan == (
        f"run on {where} with TOKEN set:\n$ echo one >> {ran}\n$ echo two")
    assert "s3cret-value" not in (result.jobs["setup"].plan or "")
    assert not ran.exists()
    runonly = RunCommands.variant("always", **conn_opts(sshd, known_hosts), commands=["true"])
    planned = run_once(runonly, no_act=True).jobs["always"]
    assert (planned.status, planned.plan) == (JobStatus.WOULD_RUN, f"run on {where}:\n$ true")

    same, other = tmp_path / "same.conf", tmp_path / "other.conf"
    same.write_text("a = 1\n")
    other.write_bytes(b"b = 2\n" * 512)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "same.conf").write_text("a = 1\n")
    Copy = CopyFiles.variant("copy", **conn_opts(sshd, known_hosts), files=[
        (str(same), str(remote / "same.conf")), (str(other), str(remote / "other.conf"))])
    result = run_once(Copy, no_act=True)
    assert result.jobs["copy"].plan == (
        f"copy to {where}:\n{other} (3.0 KiB) -> {remote / 'other.conf'}")
    assert sorted(p.name for p in remote.iterdir()) == ["same.conf"]
