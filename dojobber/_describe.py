"""Text for any exception object, even one whose ``__str__`` raises.

Job code can raise anything; every listener, record and summary that shows
an exception goes through :func:`exception_text` (or :func:`message`), so an
exception that cannot describe itself is still shown: by its type and its
``repr`` (or only its type when that fails too), with a note saying so.
"""

from __future__ import annotations

import re

__all__ = ["exception_text", "mask_urls", "message"]

#: ``scheme://user:password@``: the password is what lies between the
#: user's colon and the ``@`` before the host.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):[^\s@/?#]*@")


def mask_urls(text: str, mask: str = "***") -> str:
    """``text`` with the password of every URL in it replaced by ``mask``
    (``postgresql://app:S3cr3t@db/prod`` -> ``postgresql://app:***@db/prod``)."""
    if "://" not in text:  # (the usual case, without a regex search)
        return text
    return _URL_PASSWORD.sub(rf"\1:{mask}@", text)


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
