"""Fixtures of the backend tests (the servers themselves are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool


@pytest.fixture
def sql(catalog_url: str) -> Iterator[Engine]:
    """A plain engine on the test's catalog, for checks that do not go through mediastore."""
    engine = create_engine(catalog_url, poolclass=NullPool)
    yield engine
    engine.dispose()
