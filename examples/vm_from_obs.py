"""Boot an image built in the Open Build Service and provision it over SSH.

The Kanku workflow as one dojobber graph, five bundled jobs::

    Find image (OBS)  ->  Download image  ->  Create domain (libvirt)
        ->  Wait for address  ->  Provision (SSH commands)

Each arrow is a dependency: a job runs only when the one before it holds.
Rerun the script as often as you like: a converged machine changes nothing
(the download is verified, not repeated; the domain is checked, not
redefined; the provisioning commands are skipped while ``--check`` exits 0).

Real use needs the extras ``obs``, ``libvirt`` and ``ssh``, a libvirt
daemon, and an image whose root account accepts your SSH key (Kanku's
images, or one set up with cloud-init / Ignition)::

    python examples/vm_from_obs.py --project devel:kanku:images \\
        --package openSUSE-Leap-15.6-JeOS --images ~/.cache/dojobber-images \\
        --key ~/.ssh/id_ed25519 --command "zypper -n in nginx" \\
        --check "rpm -q nginx"

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
from dojobber.contrib.ssh import RunCommands


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
    ssh_port: int = 22,
    username: str = "root",
    key: str | None = None,
    known_hosts: str | None = None,
    host_key_policy: str = "accept-new",
    ssh_options: dict[str, Any] | None = None,
) -> type[Job]:
    """The graph's root job (Provision) for these settings."""
    find = ObsImage.variant("Find image", project=project, package=package,
                            repository=repository, arch=arch, api_url=api_url,
                            download_url=download_url)
    fetch = Download.variant("Download image", source=find, dest_dir=images)
    domain = CreateDomain.variant("Create domain", uri=uri, name=name, image=fetch,
                                  memory=memory, vcpu=vcpu, network=network)
    address = WaitForAddress.variant("Wait for address", domain=domain,
                                     timeout=address_timeout)
    return RunCommands.variant(
        "Provision", address_from=address, host=ssh_host, port=ssh_port,
        username=username, key_filename=key, host_key_policy=host_key_policy,
        known_hosts=known_hosts or os.path.join(images, "known_hosts"),
        commands=list(commands), check_command=check, **(ssh_options or {}),
    )


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
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--user", default="root")
    parser.add_argument("--key", help="private key file (default: agent, ~/.ssh/id_*)")
    parser.add_argument("--known-hosts", help="default: <images>/known_hosts")
    parser.add_argument("--host-key-policy", default="accept-new",
                        choices=["verify", "accept-new", "insecure"])
    parser.add_argument("--command", action="append", dest="commands", default=[],
                        help="a command to run on the guest (repeatable)")
    parser.add_argument("--check", help="exits 0 when the guest needs no commands")
    parser.add_argument("--graph", metavar="FILE", help="only draw the graph (e.g. vm.svg)")
    args = parser.parse_args(argv)
    root = build(
        project=args.project, package=args.package, images=args.images,
        commands=args.commands or ["uname -a"], check=args.check,
        repository=args.repository, arch=args.arch, api_url=args.api_url,
        download_url=args.download_url, uri=args.uri, name=args.name, memory=args.memory,
        vcpu=args.vcpu, network=args.network, ssh_host=args.ssh_host, ssh_port=args.ssh_port,
        username=args.user, key=args.key, known_hosts=args.known_hosts,
        host_key_policy=args.host_key_policy,
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
