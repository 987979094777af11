"""Check mode for the SSH jobs: what their Run would do, in words.

No connection is made here: the text comes from the options and from what
the Check found (kept in the attempt's ``storage``).  Secrets (passwords,
environment values) are never part of it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._describe import message
from ._transfer import size_text
from .ssh_errors import SSHJobError

if TYPE_CHECKING:
    from .prepare_ssh import AuthorizeSSHKey, CloudInitSeed
    from .ssh import CopyFiles, RunCommands, SSHJob

__all__ = ["authorize_key_plan", "copy_files_plan", "run_commands_plan", "seed_plan"]

#: Where CopyFiles' Check keeps the files it found differing (remote ->
#: local), for its Plan.
DIFFERING = "differing"


def _where(job: SSHJob) -> str:
    """``user@host:port``, or why the host is not known yet."""
    try:
        return job._target().name
    except SSHJobError as err:
        return f"the host (not known yet: {message(err)})"


def run_commands_plan(job: RunCommands) -> str:
    """The commands Run would run, one per line after the first."""
    env = ""
    if job.environment:
        env = f" with {', '.join(sorted(job.environment))} set"
    return "\n".join([f"run on {_where(job)}{env}:", *(f"$ {c}" for c in job.commands)])


def copy_files_plan(job: CopyFiles) -> str:
    """The files Run would upload (those the Check found differing)."""
    differing = (job.storage or {}).get(DIFFERING)
    pairs = list(job.files) if differing is None else [
        (local, remote) for remote, local in differing.items()]
    head = f"copy to {_where(job)}"
    if differing is None and job._check_exception is not None:
        head += f" (not compared: {message(job._check_exception)})"
    lines = [head + ":"]
    for local, remote in pairs:
        path = os.path.expanduser(local)
        size = f" ({size_text(os.path.getsize(path))})" if os.path.isfile(path) else ""
        lines.append(f"{local}{size} -> {remote}")
    return "\n".join(lines)


def seed_plan(job: CloudInitSeed) -> str:
    """The seed ISO Run would write, and why."""
    why = message(job._check_exception) if job._check_exception else ""
    text = (f"write the cloud-init seed {job._path()} (user {job.username}, host name "
            f"{job.hostname}, your public key)")
    return f"{text}; now: {why}" if why else text


def authorize_key_plan(job: AuthorizeSSHKey) -> str:
    """How Run would get the key onto the guest."""
    where, key = _where(job), job.key_filename or "the public key"
    if job.method == "console":
        name, uri = job._domain()
        console = job.console_device or f"the console of domain {name!r} on {uri}"
        return (f"log in on {console} as {job.username} and add {key} to "
                f"~/.ssh/authorized_keys (waiting up to {float(job.timeout):g}s for a login "
                f"prompt), so that SSH to {where} works")
    return (f"wait up to {float(job.timeout):g}s for SSH to {where} with {key} to work "
            "(cloud-init writes the key at boot from the seed)")
