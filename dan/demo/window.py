"""Showing frames in a window, where this OpenCV build and this machine can.

The project depends on ``opencv-python-headless`` (albumentations needs that build), which has no
GUI: ``cv2.namedWindow`` raises ``cv2.error``. On Linux without ``DISPLAY``/``WAYLAND_DISPLAY``
there is no screen either. :func:`window_support` finds out which, so the demo can say so in one line
and carry on headless.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from dan.opencv import cv2

__all__ = ["NO_WINDOW_MESSAGE", "Window", "window_support"]

NO_WINDOW_MESSAGE = (
    "cannot open a window: {why}; running headless — use --output/--csv; "
    "for a window install opencv-python<5 in place of the headless build, see README"
)


def window_support(probe: bool = True) -> tuple[bool, str]:
    """Whether a window can be shown here.

    Args:
        probe: Actually try to create (and destroy) a window.

    Returns:
        ``(ok, message)``: message is empty when ok, else the one line to print.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, NO_WINDOW_MESSAGE.format(why="no display (DISPLAY is not set)")
    if probe:
        try:
            cv2.namedWindow("dan-probe", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("dan-probe")
        except cv2.error:
            why = "this OpenCV build has no GUI support (opencv-python-headless)"
            return False, NO_WINDOW_MESSAGE.format(why=why)
    return True, ""


class Window:
    """A window showing frames; :meth:`show` returns False when the user pressed q or Esc.

    Args:
        title: Window title.
    """

    def __init__(self, title: str = "dan demo") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        self.open = True

    def show(self, frame_bgr: np.ndarray, wait_ms: int = 1) -> bool:
        """Display a frame; False when the user asked to quit (q, Esc, or closed the window)."""
        cv2.imshow(self.title, frame_bgr)
        key = cv2.waitKey(wait_ms) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return True

    def close(self) -> None:
        """Close the window (idempotent)."""
        if self.open:
            self.open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
