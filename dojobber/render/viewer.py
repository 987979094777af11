"""Showing an image file in the desktop's image viewer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ._errors import NoImageViewerError

__all__ = ["open_image"]


def open_image(path: str) -> None:
    """Open the image file ``path`` in the desktop's image viewer.

    Uses ``open`` on macOS, the file association on Windows, and on other
    systems with a display ``xdg-open``, then ImageMagick's ``display``,
    ``eog`` or ``feh``.  Raises :class:`NoImageViewerError` saying what to
    install when there is no display or no viewer.
    """
    if sys.platform == "win32":  # pragma: no cover - not tested on Linux
        os.startfile(path)  # type: ignore[attr-defined]
        return
    if sys.platform == "darwin":  # pragma: no cover
        command = ["open", path]
    else:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise NoImageViewerError("no graphical display (DISPLAY is not set)")
        for viewer in ("xdg-open", "display", "eog", "feh"):
            found = shutil.which(viewer)
            if found:
                command = [found, path]
                break
        else:
            raise NoImageViewerError("none of xdg-open, display, eog or feh is on PATH")
    try:
        # The viewer keeps running on its own; do not wait for it.
        subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as err:
        raise NoImageViewerError(f"{command[0]} could not be started ({err})") from None
