"""Keep each benchmark's results in its own section of benchmarks/README.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, marker: str, heading: str, body: str, intro: str = "") -> str:
    """Put ``body`` between ``<!-- marker:begin -->`` and ``<!-- marker:end -->``
    in ``path`` (replacing what was there), or append it under ``## heading``
    (and ``intro``, which stays outside the markers) when the markers are not
    there yet.  Returns the marked text."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = f"{begin}\n{body.strip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        lead = f"{intro.strip()}\n\n" if intro.strip() else ""
        new = old.rstrip("\n") + f"\n\n## {heading}\n\n{lead}" + text + "\n"
    path.write_text(new)
    return text
