"""Publish a small static website with dojobber, and watch it converge.

Each job is one fact about the site ("the page about.html is up to date",
"the sitemap lists every page").  Its Check says whether the fact holds, its
Run makes it hold.  Rerunning the script is always safe: jobs whose fact
already holds do nothing.

The script runs the graph three times, as you would by hand:

1. The first run builds the pages, but the sitemap job fails: site.ini has
   no ``base_url`` yet, and dojobber says so.  Jobs that depend on the
   sitemap are blocked; everything else is done.
2. We fix the cause (add ``base_url`` to site.ini) and run again: only the
   sitemap and what waited for it run; the rest is already true.
3. A third run changes nothing at all.

After the failing run and after the last run it draws the job graph,
coloured by outcome, to PNG files under examples/out/ (``--graphs DIR``
elsewhere).  That needs Graphviz's ``dot`` program; without it the script
says why there is no picture and goes on.

Run it with ``make demo`` or
``python examples/website.py [--dir DIR] [--graphs DIR]``.
"""

from __future__ import annotations

import argparse
import configparser
import html
import shutil
from pathlib import Path

from dojobber import REQUIRED, DoJobber, DummyJob, Job, RunResult


class SiteDirs(Job):
    """The site's source and output folders exist."""

    def Check(self, *, site: Path) -> None:
        if not (site / "public").is_dir():
            raise FileNotFoundError(f"{site / 'public'} does not exist")

    def Run(self, *, site: Path) -> None:
        (site / "public").mkdir(parents=True, exist_ok=True)


class Config(Job):
    """site.ini exists with a [site] section and a title."""

    DEPS = [SiteDirs]

    def Check(self, *, site: Path) -> str:
        config = configparser.ConfigParser()
        if not config.read(site / "site.ini") or not config.has_option("site", "title"):
            raise LookupError("site.ini has no [site] title")
        return config.get("site", "title")

    def Run(self, *, site: Path) -> None:
        (site / "site.ini").write_text("[site]\ntitle = Ada's garden notes\n")


class Page(Job):
    """One HTML page rendered from its text; options SLUG, TITLE, TEXT."""

    DEPS = [Config]
    SLUG: str = REQUIRED
    TITLE: str = REQUIRED
    TEXT: str = REQUIRED

    def wanted(self) -> str:
        return (
            f"<html><head><title>{html.escape(self.TITLE)}</title>"
            '<link rel="stylesheet" href="style.css"></head>'
            f"<body><h1>{html.escape(self.TITLE)}</h1><p>{html.escape(self.TEXT)}</p>"
            "</body></html>\n"
        )

    def Check(self, *, site: Path) -> str:
        path = site / "public" / f"{self.SLUG}.html"
        if not path.exists() or path.read_text() != self.wanted():
            raise ValueError(f"{path.name} is missing or out of date")
        return path.name

    def Run(self, *, site: Path) -> None:
        (site / "public" / f"{self.SLUG}.html").write_text(self.wanted())


# Three distinct jobs made from one class: no boilerplate subclasses.
PAGES = [
    Page.variant("Page: tomatoes", SLUG="tomatoes", TITLE="Tomatoes", TEXT="Stake them early."),
    Page.variant("Page: basil", SLUG="basil", TITLE="Basil", TEXT="Pinch the flowers off."),
    Page.variant("Page: compost", SLUG="compost", TITLE="Compost", TEXT="Turn it every week."),
]


class Stylesheet(Job):
    """style.css is in place."""

    DEPS = [SiteDirs]
    CSS = "body { font-family: sans-serif; max-width: 40em; margin: auto; }\n"

    def Check(self, *, site: Path) -> None:
        if (site / "public" / "style.css").read_text() != self.CSS:
            raise ValueError("style.css differs")

    def Run(self, *, site: Path) -> None:
        (site / "public" / "style.css").write_text(self.CSS)


class Index(Job):
    """index.html links every page."""

    DEPS = [Config, *PAGES]

    def wanted(self) -> str:
        links = "".join(
            f'<li><a href="{p.SLUG}.html">{html.escape(p.TITLE)}</a></li>' for p in PAGES
        )
        return f"<html><body><ul>{links}</ul></body></html>\n"

    def Check(self, *, site: Path) -> None:
        path = site / "public" / "index.html"
        if not path.exists() or path.read_text() != self.wanted():
            raise ValueError("index.html is missing or out of date")

    def Run(self, *, site: Path) -> None:
        (site / "public" / "index.html").write_text(self.wanted())


class Sitemap(Job):
    """sitemap.xml lists every page under the site's base_url."""

    DEPS = [Config, Index]
    TRIES = 1  # a missing setting will not fix itself: do not retry

    def wanted(self, site: Path) -> str:
        config = configparser.ConfigParser()
        config.read(site / "site.ini")
        base = config.get("site", "base_url", fallback=None)
        if not base:
            raise LookupError(
                "site.ini has no base_url; add 'base_url = https://...' under [site] "
                "and run again"
            )
        urls = "".join(f"<url><loc>{base}/{p.SLUG}.html</loc></url>" for p in PAGES)
        return f'<?xml version="1.0"?><urlset>{urls}</urlset>\n'

    def Check(self, *, site: Path) -> None:
        wanted = self.wanted(site)  # raises first when base_url is missing
        path = site / "public" / "sitemap.xml"
        if not path.exists() or path.read_text() != wanted:
            raise ValueError("sitemap.xml is missing or out of date")

    def Run(self, *, site: Path) -> None:
        (site / "public" / "sitemap.xml").write_text(self.wanted(site))


class Published(DummyJob):
    """The whole site: everything above holds."""

    DEPS = [Index, Stylesheet, Sitemap]


def converge(site: Path, title: str) -> tuple[DoJobber, RunResult]:
    print(f"\n== {title}")
    dojob = DoJobber()
    dojob.configure(Published, default_retry_delay=0)
    dojob.set_args(site=site)
    result = dojob.checknrun()
    print(result.report())
    return dojob, result


def draw(dojob: DoJobber, path: Path) -> None:
    """Write the graph of ``dojob``'s last run to ``path`` as PNG, or say why not."""
    # Imported here: render needs the 'graph' extra, the rest of the demo does not.
    from dojobber.render import GraphvizUnavailableError

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as out:
            dojob.write_graph(out, "png")
    except GraphvizUnavailableError as err:
        partial.unlink(missing_ok=True)
        print(f"(no picture: {err})")
        return
    partial.replace(path)
    print(f"Graph of this run: {path}")


def main() -> int:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=here / "out" / "website",
        help="where to build the site (emptied first)",
    )
    parser.add_argument(
        "--graphs", type=Path, default=here / "out",
        help="where to write the PNG graphs of the failing and the final run",
    )
    args = parser.parse_args()
    site = args.dir.resolve()
    graphs = args.graphs.resolve()
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    print(f"Building a website in {site}")

    dojob, _ = converge(site, "Run 1: a fresh machine")
    draw(dojob, graphs / "website-failing-run.png")
    print("\n-> The sitemap needs a base_url. Fixing site.ini, as a person would ...")
    with open(site / "site.ini", "a") as ini:
        ini.write("base_url = https://garden.example.org\n")
    dojob, _ = converge(site, "Run 2: after the fix, only what was missing runs")
    ok = dojob.success()
    dojob, _ = converge(site, "Run 3: nothing left to do, nothing runs")
    draw(dojob, graphs / "website-final-run.png")
    return 0 if ok and dojob.success() else 1


if __name__ == "__main__":
    raise SystemExit(main())
