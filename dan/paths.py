"""Where ``dan`` keeps its files: one folder, ``$DAN_HOME`` or the user cache folder.

``<dan_home>/models`` holds downloaded checkpoints (:mod:`dan.hub`), ``<dan_home>/exports`` the auto
race's cached exports, ``<dan_home>/tmp`` export scratch folders and ``<dan_home>/probe.json`` the
probe faces' record. No network code here: the runtime and export find the folder without importing
the downloader.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["dan_home", "models_dir"]


def dan_home() -> Path:
    """``$DAN_HOME`` if set, else the user cache folder (``~/.cache/dan`` on Linux)."""
    env = os.environ.get("DAN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dan"))


def models_dir() -> Path:
    """Where downloaded checkpoints are kept: ``<dan_home>/models``."""
    return dan_home() / "models"
