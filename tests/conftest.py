"""Shared test set-up: the download cache, export cache and probe results go to a temporary folder,
never the user's ``~/.cache/dan``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_dan_home(tmp_path_factory: pytest.TempPathFactory):
    """One ``DAN_HOME`` per test session (tests that need their own set it again with monkeypatch)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DAN_HOME", str(tmp_path_factory.mktemp("dan_home")))
    yield
    mp.undo()
