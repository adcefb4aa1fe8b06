"""Numbers read from annotation files: finite, and whole where a count or a pixel is meant.

Python's ``float`` reads ``nan``, ``inf`` and ``1e999`` without complaint, and ``int(float("inf"))`` raises
``OverflowError`` (not ``ValueError``), which escaped the readers as a traceback. Every reader turns the
numbers of its list files through these two functions, so a bad one is a ``ValueError`` that the reader
records as an :class:`dan.data.samples.Issue` naming the file and line (one line, with ``strict``).
"""

from __future__ import annotations

import math

__all__ = ["LIMIT", "finite", "whole"]

LIMIT = 2**31 - 1
"""Largest magnitude a whole number (a coordinate, a label, a count) may have: more is damage, not data."""


def finite(text: str) -> float:
    """A finite number (``"0.5"``, ``" -3e2 "``).

    Raises:
        ValueError: Not a number, or NaN or infinite (``nan``, ``inf``, ``1e999``).
    """
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    return value


def whole(text: str, exact: bool = True) -> int:
    """A whole number within ``±LIMIT``, written as an integer or a float with no fraction (``"12"``, ``"12.0"``).

    Args:
        text: The field.
        exact: Refuse a fraction; False: cut it off (a pixel coordinate written as ``"12.5"`` is 12).

    Raises:
        ValueError: Not a number, not finite, with a fraction (``exact``), or beyond ``±LIMIT``.
    """
    value = finite(text)
    if exact and value != int(value):
        raise ValueError(f"{text.strip()!r} is not a whole number")
    if abs(value) > LIMIT:
        raise ValueError(f"{text.strip()!r} is out of range (more than {LIMIT})")
    return int(value)
