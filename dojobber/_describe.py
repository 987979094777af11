"""Text for any exception object, even one whose ``__str__`` raises.

Job code can raise anything; every listener, record and summary that shows
an exception goes through :func:`exception_text` (or :func:`message`), so an
exception that cannot describe itself is still shown: by its type and its
``repr`` (or only its type when that fails too), with a note saying so.
"""

from __future__ import annotations

__all__ = ["exception_text", "message"]


def message(error: BaseException) -> str:
    """``str(error)``; when that raises, its ``repr`` with a note (and only
    its type name when ``repr`` raises as well)."""
    try:
        return str(error)
    except BaseException as err:  # anything job code does
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        failure = type(err).__name__
    try:
        shown = repr(error)
    except Exception:
        shown = f"<{type(error).__name__} object>"
    return f"{shown} (its str() raised {failure})"


def exception_text(error: BaseException | None) -> str | None:
    """``"Type: message"`` for ``error`` (None for None); never raises."""
    if error is None:
        return None
    return f"{type(error).__name__}: {message(error)}"
