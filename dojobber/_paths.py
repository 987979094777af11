"""Per-user file locations."""

from __future__ import annotations

import os

__all__ = ["user_state_file"]


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
