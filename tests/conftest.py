"""Shared fixtures: a real store in tmp_path, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

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


@pytest.fixture(scope="module")
def _module_http() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def http(_module_http: HTTPServer) -> Iterator[HTTPServer]:
    """A threaded pytest-httpserver bound to 127.0.0.1 only, with empty handlers and log."""
    _module_http.clear()
    yield _module_http
    _module_http.check_assertions()  # every request that arrived had a handler
    _module_http.check_handler_errors()


@pytest.fixture
def make_store(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., MediaStore]]:
    """Builds stores under tmp_path that may reach loopback (fast retries); closes them all.

    A test module sets ``STORE_RETRIES`` to change the default number of retries.
    """
    opened: list[MediaStore] = []
    retries = getattr(request.module, "STORE_RETRIES", 2)

    def make(name: str = "s", **options: Any) -> MediaStore:
        options.setdefault("allow_private_networks", True)
        options.setdefault("retries", retries)
        options.setdefault("backoff_factor", 0.01)
        store = MediaStore(tmp_path / name, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def lstore(make_store: Callable[..., MediaStore]) -> MediaStore:
    """A store allowed to download from loopback."""
    return make_store()
