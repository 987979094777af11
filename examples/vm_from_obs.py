"""Boot an image built in the Open Build Service and provision it over SSH.

The Kanku workflow as one dojobber graph of bundled jobs::

    Find image (OBS)  ->  Download image  ->  [Seed]  ->  Create domain (libvirt)
        ->  Wait for address  ->  Authorize key  ->  Provision (SSH commands)

Each arrow is a dependency: a job runs only when the one before it holds.
Rerun the script as often as you like: a converged machine changes nothing
(the download is verified, not repeated; the domain is checked, not
redefined; the key is proven by one SSH handshake; the provisioning commands
are skipped while ``--check`` exits 0).

*Authorize key* (Kanku's PrepareSSH, docs/prepare_ssh.rst) makes a stock
image accept your key: ``--prepare cloud-init`` (default) attaches a
cloud-init seed ISO (the *Seed* job) to the domain; ``--prepare console``
logs in on the serial console with the password in the environment variable
``--console-password-env`` names; ``--prepare none`` trusts the image.

Real use needs the extras ``obs``, ``libvirt`` and ``ssh``, a libvirt
daemon, and your key::

    python examples/vm_from_obs.py --project devel:kanku:images \\
        --package openSUSE-Leap-15.6-JeOS --images /var/lib/libvirt/images/dojobber \\
        --key ~/.ssh/id_ed25519 --command "zypper -n in nginx" \\
        --check "rpm -q nginx"

``--forward-ssh 2222`` gives the guest user-mode networking instead of a
libvirt network, with 127.0.0.1:2222 forwarded to its port 22 (no bridge,
no NAT network needed); ``--domain-type qemu`` forces TCG emulation where
KVM is missing or broken.

The first connection records the guest's host key in ``<images>/known_hosts``
(``accept-new``); a recreated guest has a new key and is refused until you
remove its line (``ssh-keygen -R``), or pass ``--host-key-policy insecure``
for throw-away guests.  ``--graph vm.svg`` draws the graph (extra ``graph``).
The test suite runs this module against a fake OBS on loopback, libvirt's
``test:///default`` driver and a loopback sshd (``--ssh-host``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from dojobber import DoJobber, Job
from dojobber.contrib.download import Download
from dojobber.contrib.libvirt import CreateDomain, WaitForAddress
from dojobber.contrib.obs import ObsImage
from dojobber.contrib.prepare_ssh import AuthorizeSSHKey, CloudInitSeed
from dojobber.contrib.ssh import RunCommands

PREPARE = ("cloud-init", "console", "none")


def build(
    *,
    project: str,
    package: str,
    images: str,
    commands: Sequence[str],
    check: str | None = None,
    repository: str = "images",
    arch: str = "x86_64",
    api_url: str = "https://api.opensuse.org/public",
    download_url: str = "https://download.opensuse.org/repositories/",
    uri: str = "qemu:///system",
    name: str = "kanku-vm",
    memory: str = "2G",
    vcpu: int = 2,
    network: str = "default",
    address_timeout: float = 180.0,
    ssh_host: str | None = None,
    ssh_port: int | None = None,
    username: str = "root",
    key: str | None = None,
    known_hosts: str | None = None,
    host_key_policy: str = "accept-new",
    ssh_options: dict[str, Any] | None = None,
    prepare: str = "cloud-init",
    console_password: str | None = None,
    prepare_timeout: float = 600.0,
    domain_type: str | None = None,
    forward_ssh: int | None = None,
) -> type[Job]:
    """The graph's root job (Provision) for these settings.

    ``ssh_port`` None: 22, or the forwarded port with ``forward_ssh``."""
    if prepare not in PREPARE:
        raise ValueError(f"prepare={prepare!r}: use one of {', '.join(PREPARE)}")
    find = ObsImage.variant("Find image", project=project, package=package,
                            repository=repository, arch=arch, api_url=api_url,
                            download_url=download_url)
    fetch = Download.variant("Download image", source=find, dest_dir=images)
    seed = None
    if prepare == "cloud-init":
        seed = CloudInitSeed.variant("Seed", path=os.path.join(images, f"{name}-seed.iso"),
                                     hostname=name, username=username, key_filename=key)
    domain = CreateDomain.variant(
        "Create domain", uri=uri, name=name, image=fetch, memory=memory, vcpu=vcpu,
        network=None if forward_ssh else network, seed=seed, domain_type=domain_type,
        port_forwards={forward_ssh: 22} if forward_ssh else None,
        DEPS=[fetch] + ([seed] if seed else []),
    )
    address = WaitForAddress.variant("Wait for address", domain=domain,
                                     timeout=address_timeout,
                                     forwarded_port=22 if forward_ssh else None)
    ssh = {"host": ssh_host, "port": ssh_port, "username": username, "key_filename": key,
           "host_key_policy": host_key_policy,
           "known_hosts": known_hosts or os.path.join(images, "known_hosts")}
    # the guest may still be booting when it has an address: wait for its sshd
    extra = {"connect_retry_for": 120.0, **(ssh_options or {})}
    reach: type[Job] = address
    if prepare != "none":
        connection = {k: v for k, v in extra.items() if hasattr(AuthorizeSSHKey, k)}
        reach = AuthorizeSSHKey.variant(
            "Authorize key", method=prepare, domain=domain, address_from=address,
            console_password=console_password, timeout=prepare_timeout,
            DEPS=[address], **ssh, **connection)
    return RunCommands.variant("Provision", address_from=reach, commands=list(commands),
                               check_command=check, **ssh, **extra)


def converge(root: type[Job], verbose: bool = True, tries: int = 3,
             retry_delay: float = 5.0) -> DoJobber:
    """One run of the graph; returns the DoJobber to inspect."""
    dj = DoJobber()
    dj.configure(root, verbose=verbose, default_tries=tries, default_retry_delay=retry_delay)
    dj.checknrun()
    return dj


def draw(root: type[Job], path: str) -> None:
    """Write a picture of the graph (format from the file name, e.g. .svg)."""
    import graphviz

    dj = DoJobber()
    dj.configure(root)
    dot = graphviz.Digraph("vm_from_obs", graph_attr={"rankdir": "LR"},
                           node_attr={"shape": "box", "style": "rounded"})
    for job in dj.graph.nodes:
        dot.node(job)
    for job, dependency in dj.graph.edges:
        dot.edge(dependency, job)
    stem, ext = os.path.splitext(path)
    dot.render(stem, format=ext.lstrip(".") or "svg", cleanup=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--project", required=True, help="OBS project")
    parser.add_argument("--package", required=True, help="OBS package that builds the image")
    parser.add_argument("--repository", default="images")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--api-url", default="https://api.opensuse.org/public")
    parser.add_argument("--download-url", default="https://download.opensuse.org/repositories/")
    parser.add_argument("--images", default=os.path.expanduser("~/.cache/dojobber-images"),
                        help="where images and per-domain disks go")
    parser.add_argument("--uri", default="qemu:///system", help="libvirt URI")
    parser.add_argument("--name", default="kanku-vm", help="domain name")
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--vcpu", type=int, default=2)
    parser.add_argument("--network", default="default", help="libvirt network")
    parser.add_argument("--ssh-host", help="connect here instead of the guest's address")
    parser.add_argument("--ssh-port", type=int, help="default: 22, or the --forward-ssh port")
    parser.add_argument("--user", default="root")
    parser.add_argument("--key", help="private key file (default: agent, ~/.ssh/id_*)")
    parser.add_argument("--known-hosts", help="default: <images>/known_hosts")
    parser.add_argument("--host-key-policy", default="accept-new",
                        choices=["verify", "accept-new", "insecure"])
    parser.add_argument("--command", action="append", dest="commands", default=[],
                        help="a command to run on the guest (repeatable)")
    parser.add_argument("--check", help="exits 0 when the guest needs no commands")
    parser.add_argument("--prepare", choices=PREPARE, default="cloud-init",
                        help="how the guest comes to accept --key (docs/prepare_ssh.rst)")
    parser.add_argument("--console-password-env", metavar="VAR",
                        help="environment variable holding the console password "
                             "(--prepare console)")
    parser.add_argument("--domain-type", choices=["kvm", "qemu"],
                        help="default: kvm when the host offers it, else qemu (TCG)")
    parser.add_argument("--forward-ssh", type=int, metavar="PORT",
                        help="user-mode networking; reach the guest at 127.0.0.1:PORT")
    parser.add_argument("--graph", metavar="FILE", help="only draw the graph (e.g. vm.svg)")
    args = parser.parse_args(argv)
    password = None
    if args.prepare == "console":
        if not args.console_password_env or args.console_password_env not in os.environ:
            parser.error("--prepare console needs --console-password-env VAR with VAR set")
        password = os.environ[args.console_password_env]
    if args.prepare != "none" and not args.key:
        parser.error(f"--prepare {args.prepare} needs --key (the private key; its .pub "
                     "is authorized)")
    root = build(
        project=args.project, package=args.package, images=args.images,
        commands=args.commands or ["uname -a"], check=args.check,
        repository=args.repository, arch=args.arch, api_url=args.api_url,
        download_url=args.download_url, uri=args.uri, name=args.name, memory=args.memory,
        vcpu=args.vcpu, network=args.network, ssh_host=args.ssh_host, ssh_port=args.ssh_port,
        username=args.user, key=args.key, known_hosts=args.known_hosts,
        host_key_policy=args.host_key_policy, prepare=args.prepare,
        console_password=password, domain_type=args.domain_type,
        forward_ssh=args.forward_ssh,
    )
    if args.graph:
        draw(root, args.graph)
        return 0
    os.makedirs(args.images, exist_ok=True)
    dj = converge(root)
    if dj.result is not None:
        print(dj.result.summary())
    return 0 if dj.success() else 1


if __name__ == "__main__":
    sys.exit(main())
