"""Keeping secrets out of the records: values of secret-looking argument
names, command-line words that carry them, and the password of any URL
(``postgresql://app:S3cr3t@db/prod`` is stored as
``postgresql://app:***@db/prod``) in arguments, command lines, log lines,
results and errors are masked before storing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .._describe import mask_urls as _mask_urls
from .._postgres import redact_urls

__all__ = [
    "MASK", "MAX_REPR", "SECRET_NAMES", "mask_argv", "mask_secrets", "mask_urls", "short_repr",
]

#: Argument names whose values are never stored (matched anywhere, any case).
SECRET_NAMES = re.compile(
    r"pass|secret|token|key|auth|cred|private|cookie|session|signature", re.IGNORECASE
)
MASK = "***"
#: Longest repr of a job's result that is stored.
MAX_REPR = 2000


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it masked."""
    return _mask_urls(text, MASK)


def mask_secrets(value: Any) -> Any:
    """``value`` made JSON-safe, with values of secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {
            str(k): MASK if SECRET_NAMES.search(str(k)) else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return mask_urls(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return short_repr(value)


def mask_argv(argv: Iterable[str]) -> list[str]:
    """Command-line words with secrets masked: ``KEY=VALUE`` and
    ``--KEY=VALUE`` with a secret-looking KEY, the word after a
    secret-looking ``--option``, and the password of a database URL."""
    out: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next and not word.startswith("-"):
            out.append(MASK)
            hide_next = False
            continue
        hide_next = False
        word = mask_urls(redact_urls(word))  # a URL's password
        key, eq, _ = word.partition("=")
        if eq and SECRET_NAMES.search(key):
            out.append(f"{key}={MASK}")
        elif word.startswith("-") and not eq and SECRET_NAMES.search(word):
            out.append(word)
            hide_next = True
        else:
            out.append(word)
    return out


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as err:  # a broken __repr__ must not break recording
        text = f"<unrepresentable {type(value).__name__}: {err}>"
    text = mask_urls(text)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


