"""Per-user file locations."""

from __future__ import annotations

import os

__all__ = ["expand_path", "user_state_file"]


def expand_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a string with a leading ``~`` / ``~user`` expanded: every
    file path the library takes goes through here, so
    ``records="~/runs.sqlite3"`` means the home directory, as in a shell."""
    return os.path.expanduser(os.fspath(path))


def user_state_file(env_var: str, name: str) -> str:
    """``$env_var`` if set, else ``$XDG_STATE_HOME/dojobber/name``
    (``~/.local/state/dojobber/name`` when ``XDG_STATE_HOME`` is unset)."""
    env = os.environ.get(env_var)
    if env:
        return os.path.expanduser(env)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "dojobber", name)
