"""Showing an image file in the desktop's image viewer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

from ._errors import NoImageViewerError

__all__ = ["open_image", "viewer_command"]


def viewer_command() -> list[str]:
    """The command that shows an image (the file's path is appended).

    Uses ``open`` on macOS and on other systems with a display ``xdg-open``,
    then ImageMagick's ``display``, ``eog`` or ``feh``.  Raises
    :class:`NoImageViewerError` when there is no display (``no_display``
    set) or no viewer.  On Windows the file association is used: ``[]``.
    """
    if sys.platform == "win32":  # pragma: no cover - not tested on Linux
        return []
    if sys.platform == "darwin":  # pragma: no cover
        return ["open"]
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NoImageViewerError(
            "no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set)",
            no_display=True,
        )
    for viewer in ("xdg-open", "display", "eog", "feh"):
        found = shutil.which(viewer)
        if found:
            return [found]
    raise NoImageViewerError("none of xdg-open, display, eog or feh is on PATH")


def open_image(path: str) -> None:
    """Open the image file ``path`` in the desktop's image viewer.

    See :func:`viewer_command` for the viewer chosen.  Raises
    :class:`NoImageViewerError` saying what to do when there is no display
    or no viewer.
    """
    command = viewer_command()
    if not command:  # pragma: no cover - Windows
        os.startfile(path)  # type: ignore[attr-defined]
        return
    command = [*command, path]
    try:
        # The viewer keeps running on its own; a daemon thread reaps it when
        # it ends (no zombie, no "subprocess is still running" warning).
        viewer_process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        threading.Thread(target=viewer_process.wait, name="dojobber-viewer-reaper",
                         daemon=True).start()
    except OSError as err:
        raise NoImageViewerError(f"{command[0]} could not be started ({err})") from None
