"""Console output of a run: upstream-style per-phase lines on stderr.

``configure(verbose=True)`` attaches a :class:`ConsoleListener` that writes
``Job.check: pass`` / ``Job.run: fail`` / ``Job.recheck: fail "why"`` lines,
as upstream DoJobber does; ``debug=True`` adds tracebacks and Cleanup lines.
"""

from __future__ import annotations

import sys
import traceback
from typing import TextIO

from .events import Listener

__all__ = ["ConsoleListener"]


def _indented(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error)).strip()
    return "  " + text.replace("\n", "\n  ")


class ConsoleListener(Listener):
    """Writes one line per phase (and tracebacks with ``debug``)."""

    def __init__(self, debug: bool = False, stream: TextIO | None = None) -> None:
        self.debug = debug
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def phase_finished(
        self,
        job: str,
        phase: str,
        attempt: int,
        ok: bool,
        duration: float,
        error: BaseException | None,
    ) -> None:
        if ok and phase == "init":
            return  # only a failing constructor is worth a line
        line = f"{job}.{phase}: {'pass' if ok else 'fail'}"
        if error is not None and phase in ("recheck", "init"):
            line += f' "{error}"'
        self.stream.write(line + "\n")
        if error is not None and self.debug and phase != "check":
            self.stream.write(f"  Error was:\n{_indented(error)}\n")

    def cleanup_finished(self, job: str, ok: bool, error: BaseException | None) -> None:
        if ok and self.debug:
            self.stream.write(f"{job}.cleanup: pass\n")
        elif not ok:
            self.stream.write(f'{job}.cleanup: fail "{error}"\n')
