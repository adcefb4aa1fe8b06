"""What ``dan predict`` reads: files, folders and glob patterns turned into images and videos.

A video is a file with one of :data:`VIDEO_SUFFIXES`; everything else named directly is taken as an
image (its reader says when it is not). Folders give their images and videos (subfolders too with
``recursive``); globs give the files they match, sorted.
"""

from __future__ import annotations

import glob
from pathlib import Path

from dan.imaging import IMAGE_SUFFIXES

__all__ = ["VIDEO_SUFFIXES", "expand_inputs", "is_video"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
"""Suffixes (lower case) of the files read as videos."""

_GLOB_CHARS = set("*?[")


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is read as a video (by its suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _list_folder(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    wanted = set(IMAGE_SUFFIXES) | set(VIDEO_SUFFIXES)
    return sorted(  # hidden files (a leading dot: the temporary files dan writes) are left out
        p for p in folder.glob(pattern) if p.suffix.lower() in wanted and not p.name.startswith(".") and p.is_file()
    )


def expand_inputs(inputs: list[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Turn files, folders and globs into the image and video paths to read.

    Returns:
        ``(paths, errors)``: files to process, in the given order without duplicates, and one-line
        messages for inputs that yielded nothing (missing path, empty folder, unmatched glob).
    """
    paths: list[Path] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = _list_folder(path, recursive)
            if not found:
                kinds = ", ".join((*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))
                errors.append(f"{path}: folder has no images or videos ({kinds})")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        elif _GLOB_CHARS & set(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                errors.append(f"{item}: no files match this pattern")
            paths.extend(found)
        else:
            errors.append(f"{path}: no such file or folder")
    unique = list(dict.fromkeys(paths))  # first occurrence of each, in order
    return unique, errors
