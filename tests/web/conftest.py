"""Fixtures of the web app tests (the server helpers live in tests/server/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Settings
from tests.server.conftest import quiet_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return quiet_settings(tmp_path)
