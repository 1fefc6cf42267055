"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediastore import MediaStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty store (read commands refuse a root that holds none)."""
    MediaStore(tmp_path / "store").close()
    return tmp_path / "store"
