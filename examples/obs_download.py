#!/usr/bin/env python3
"""Find an image built in Open Build Service and download it, idempotently.

By default this asks the real openSUSE OBS (public API, no login) for a Kanku
image and downloads it into ``~/.cache/dojobber/images``::

    python examples/obs_download.py
    python examples/obs_download.py --project devel:kanku:images \\
        --package openSUSE-Leap-15.6-JeOS --repository images

(project/package/repository names change with releases; ``osc ls PROJECT``
lists them).  Run it twice: the second run passes every Check and transfers
nothing.  Point it at another server with ``--api-url`` / ``--download-url``,
or try it offline with ``--fake``, which starts the loopback fake OBS from
``tests/fakes/obs.py`` (run from a source checkout) with a made-up 8 MiB
image, the same bytes every time (so the second run transfers nothing),
downloaded into ``~/.cache/dojobber/fake-images`` unless ``--dest`` says
otherwise: never next to real images.  Needs ``pip install dojobber[obs]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from contextlib import ExitStack
from pathlib import Path

from dojobber import DoJobber, Job, Listener
from dojobber.contrib.download import Download
from dojobber.contrib.obs import ObsImage


class ProgressLine(Listener):
    """Prints download progress on one stderr line (when it is a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
        if not self.tty:
            return
        shown = f"{done / 2**20:.0f}" + (f"/{total / 2**20:.0f}" if total else "")
        end = "\n" if total and done >= total else ""
        sys.stderr.write(f"\r{job}: {shown} MiB{end}")


def build_graph(args: argparse.Namespace) -> type[Job]:
    """The two jobs: find the image, then download it (depends on the first)."""
    find = ObsImage.variant(
        f"Find {args.package}",
        project=args.project, package=args.package, repository=args.repository,
        arch=args.arch, api_url=args.api_url, download_url=args.download_url)
    return Download.variant(
        f"Download {args.package}", source=find, dest_dir=args.dest,
        decompress=args.decompress)


FAKE_IMAGE_SIZE = 8 << 20


def start_fake(args: argparse.Namespace, stack: ExitStack) -> None:
    """Serve a made-up image from the loopback fake OBS and aim at it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fakes.obs import FakeObs

    fake = stack.enter_context(FakeObs())
    # The same made-up bytes on every run: a rerun finds them in place.
    image = random.Random(f"{args.package} fake image").randbytes(FAKE_IMAGE_SIZE)
    fake.add_build(args.project, args.package, repository=args.repository, arch=args.arch,
                   files={f"{args.package}.{args.arch}-1.0.0-Build1.1.qcow2": image,
                          f"{args.package}.{args.arch}-1.0.0-Build1.1.packages": b"x\n"})
    args.api_url, args.download_url = fake.api_url, fake.download_url
    if args.dest is None:
        args.dest = os.path.expanduser("~/.cache/dojobber/fake-images")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="devel:kanku:images")
    parser.add_argument("--package", default="openSUSE-Leap-15.6-JeOS")
    parser.add_argument("--repository", default=ObsImage.repository)
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--api-url", default=ObsImage.api_url)
    parser.add_argument("--download-url", default=ObsImage.download_url)
    parser.add_argument("--dest", default=None,
                        help="download directory (default ~/.cache/dojobber/images; "
                             "with --fake ~/.cache/dojobber/fake-images)")
    parser.add_argument("--decompress", action="store_true", help="unpack .xz images")
    parser.add_argument("--fake", action="store_true",
                        help="serve a made-up image from a loopback fake OBS")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if args.fake:
            start_fake(args, stack)
        if args.dest is None:
            args.dest = os.path.expanduser("~/.cache/dojobber/images")
        root = build_graph(args)
        dj = DoJobber()
        dj.configure(root, verbose=args.verbose, listeners=[ProgressLine()],
                     default_retry_delay=0)
        dj.checknrun()
    if not dj.success():
        for name, error in dj.nodeexceptions.items():
            print(f"{name}: {error}", file=sys.stderr)
        return 1
    result = dj.noderesults[root.__name__]
    print(f"{result['path']}\n  sha256 {result['sha256']}\n  {result['size']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
