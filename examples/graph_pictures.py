"""Pictures of a big job graph: the whole of it, only its failures, capped, Mermaid.

A made-up fleet: 40 hosts, each needing a package, a config file and a
running service, and a health check over all of them.  One host's package
mirror is down, so its package job fails and everything above it is blocked.

The script writes, under examples/out/pictures/ (``--out DIR`` elsewhere):

* ``fleet.svg``           every job (open it in a browser; hover for details)
* ``fleet-failures.png``  only the failure, what it blocks, and the way up
* ``fleet-capped.png``    at most 25 jobs, failures first
* ``fleet.mmd``           Mermaid text of the failures view (paste into Markdown)

Images need Graphviz's ``dot`` program; without it only the Mermaid text is
written, and the script says why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dojobber import DoJobber, DummyJob, Job
from dojobber.render import GraphvizUnavailableError

BROKEN_HOST = 17


class Package(Job):
    HOST = 0
    TRIES = 1

    def Check(self) -> None:
        if self.HOST == BROKEN_HOST:
            raise ConnectionError(f"mirror for host{self.HOST:02} refused the connection")


class ConfigFile(Job):
    HOST = 0

    def Check(self) -> None:
        if not self.storage.get("written"):
            raise FileNotFoundError("/etc/app.conf")

    def Run(self) -> None:
        self.storage["written"] = True


class Service(Job):
    HOST = 0

    def Check(self) -> None:
        pass


def fleet(hosts: int) -> type[Job]:
    services = []
    for host in range(hosts):
        package = Package.variant(f"host{host:02} package", HOST=host)
        config = ConfigFile.variant(f"host{host:02} config", HOST=host, DEPS=[package])
        services.append(
            Service.variant(f"host{host:02} service", HOST=host, DEPS=[package, config])
        )
    return type("Fleet healthy", (DummyJob,), {"DEPS": services})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "pictures")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    dojob = DoJobber()
    dojob.configure(fleet(40), default_retry_delay=0)
    result = dojob.checknrun()
    print(result.summary())

    with open(out / "fleet.mmd", "w") as text:
        dojob.write_graph(text, "mermaid", focus="failures")
    print(f"wrote {out / 'fleet.mmd'}")
    pictures = [
        ("fleet.svg", "svg", {"details": True}),
        ("fleet-failures.png", "png", {"focus": "failures", "details": True}),
        ("fleet-capped.png", "png", {"max_nodes": 25}),
    ]
    for name, fmt, options in pictures:
        try:
            with open(out / name, "wb") as image:
                dojob.write_graph(image, fmt, **options)
        except GraphvizUnavailableError as err:
            (out / name).unlink(missing_ok=True)
            print(f"(no pictures: {err})")
            break
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
