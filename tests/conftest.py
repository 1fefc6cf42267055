"""Shared fixtures: a real store in tmp_path, closed after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediastore import MediaStore
from mediastore.compat import set_default_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MediaStore]:
    """A fresh store with its SQLite catalog under tmp_path."""
    with MediaStore(tmp_path / "store") as s:
        yield s


@pytest.fixture(autouse=True)
def _no_default_store_leak() -> Iterator[None]:
    """The seed-compatible functions' default store never outlives a test."""
    yield
    set_default_store(None)
