"""Fixtures of the serving tests: a filled store served on loopback (see served.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from served import Served, fill, run_in_thread

from mediastore import MediaStore
from mediastore.serve import Limits


@pytest.fixture
def served_factory(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start a server over a filled store with the given options (stopped at the end)."""
    stoppers: list[Callable[[], None]] = []
    stores: list[MediaStore] = []

    def make(
        limits: Limits | None = None,
        store_options: dict[str, object] | None = None,
        **options: object,
    ) -> Served:
        root = tmp_path / "store"
        if not stores:
            with MediaStore(root) as writer:
                md5s = fill(writer)
            make.md5s = md5s  # type: ignore[attr-defined]
        store = MediaStore(root, read_only=True, **(store_options or {}))
        stores.append(store)
        url, stop = run_in_thread(store, limits, **options)
        stoppers.append(stop)
        return Served(url, store, make.md5s)  # type: ignore[attr-defined]

    yield make
    for stop in stoppers:
        stop()
    for store in stores:
        store.close()


@pytest.fixture
def served(served_factory: Callable[..., Served]) -> Served:
    """The default server: no token, default limits."""
    return served_factory()
