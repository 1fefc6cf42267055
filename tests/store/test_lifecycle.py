"""The blob lifecycle's own rules (docs/lifecycle.md): intents, leases, fencing, removal.

The races themselves are in test_concurrency.py and test_stress.py; here each rule is pinned
down by putting the store in the state the rule is about (a writer paused inside its commit,
a writer that died holding intents, a lease that ran out) with real files and a real catalog.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.catalog import Catalog, IntentLostError
from mediastore.lifecycle import LEASE_SECONDS


def _sql(root: Path, query: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "catalog.sqlite3") as conn:
        return conn.execute(query, args).fetchall()


def _pause_after_claim(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the next claim stop after it committed, until ``go`` is set; ``claimed`` tells."""
    claimed, go = threading.Event(), threading.Event()
    real = Catalog.claim

    def claim(self: Catalog, writer: str, md5s: list[str]) -> Any:
        rows = real(self, writer, md5s)
        claimed.set()
        assert go.wait(10)
        return rows

    monkeypatch.setattr(Catalog, "claim", claim)
    return claimed, go


def test_rm_leaves_a_file_a_writer_holds_and_the_writer_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rm during an add of the same content forgets the URLs at once but leaves the file (the
    add holds an intent on it); the add then records the content again, file intact."""
    data = t.noisy_jpeg(seed=3)
    md5 = hashlib.md5(data).hexdigest()
    with MediaStore(tmp_path) as first:
        first.add_bytes(data, url="https://x.test/old")
    adder, remover = MediaStore(tmp_path), MediaStore(tmp_path)
    claimed, go = _pause_after_claim(monkeypatch)
    result: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: result.update(rec=adder.add_bytes(data, url="https://x.test/new"))
    )
    th.start()
    assert claimed.wait(10)
    remover.remove(md5)
    assert remover.get_by_url("https://x.test/old") is None
    path = tmp_path / "media" / "images" / f"{md5}.jpg"
    assert path.exists() and _sql(tmp_path, "SELECT status FROM media") == [("removed",)]
    go.set()
    th.join()
    assert result["rec"].md5 == md5
    assert _sql(tmp_path, "SELECT status FROM media") == [("ok",)]
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5
    assert _sql(tmp_path, "SELECT url FROM media_urls") == [("https://x.test/new",)]
    adder.close()
    remover.close()


def test_rm_then_gc_deletes_the_file_once_no_writer_holds_it(tmp_path: Path) -> None:
    """A removal left pending by a writer's intent is finished by gc once the intent is gone."""
    data = t.noisy_jpeg(seed=4)
    with MediaStore(tmp_path) as store:
        rec = store.add_bytes(data, url="https://x.test/a")
        writer = store.lifecycle.writer_id()
        store.catalog.claim(writer, [rec.md5])  # as if an add of it were under way
        store.remove(rec.md5)
        assert rec.path is not None and rec.path.exists()
        assert store.gc().collected == []  # still held
        store.catalog.release(writer, [rec.md5])
        report = store.gc()
        assert report.collected == [rec.md5] and not rec.path.exists()
        # the row stays, without URLs, so that gc never adopts removed content back
        assert _sql(tmp_path, "SELECT status FROM media") == [("removed",)]
        assert _sql(tmp_path, "SELECT count(*) FROM media_urls") == [(0,)]


def test_dead_writers_are_reaped_after_the_lease_by_the_database_clock(tmp_path: Path) -> None:
    """A writer that stopped beating keeps its intents until its heartbeat (a database time)
    is older than the lease; gc then drops them and finishes the removal they held up."""
    data = t.noisy_jpeg(seed=5)
    with MediaStore(tmp_path) as store:
        rec = store.add_bytes(data)
    crashed = MediaStore(tmp_path)
    crashed.catalog.claim(crashed.lifecycle.writer_id(), [rec.md5])  # then it "dies"
    with MediaStore(tmp_path) as store:
        store.remove(rec.md5)
        gc = store.gc()
        assert gc.writers_reaped == 0 and gc.collected == [] and rec.path.exists()  # type: ignore[union-attr]
        _sql(tmp_path, "UPDATE writers SET heartbeat = heartbeat - ?", LEASE_SECONDS + 1)
        gc = store.gc()
        assert gc.writers_reaped >= 1 and gc.collected == [rec.md5]
        assert not rec.path.exists()  # type: ignore[union-attr]
    crashed.close()
    assert _sql(tmp_path, "SELECT count(*) FROM intents") == [(0,)]


def test_a_writer_whose_lease_ran_out_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fencing: a writer paused past its lease (its intents reaped meanwhile) fails its commit
    with IntentLostError and records no row, since a remover may have acted in between."""
    data = t.noisy_jpeg(seed=6)
    with MediaStore(tmp_path) as store, MediaStore(tmp_path) as janitor:
        claimed, go = _pause_after_claim(monkeypatch)
        errors: list[BaseException] = []

        def add() -> None:
            try:
                store.add_bytes(data, url="https://x.test/late")
            except IntentLostError as exc:
                errors.append(exc)

        th = threading.Thread(target=add)
        th.start()
        assert claimed.wait(10)
        _sql(tmp_path, "UPDATE writers SET heartbeat = heartbeat - ?", LEASE_SECONDS + 1)
        assert janitor.gc().writers_reaped >= 1
        go.set()
        th.join()
        assert len(errors) == 1 and "nothing was recorded" in str(errors[0])
        assert _sql(tmp_path, "SELECT count(*) FROM media") == [(0,)]
        assert _sql(tmp_path, "SELECT count(*) FROM media_urls") == [(0,)]


def test_closing_a_store_drops_its_writer_and_intents(tmp_path: Path) -> None:
    """A store that closes unregisters its writer, with any intent it still held."""
    store = MediaStore(tmp_path)
    store.add_bytes(t.image_bytes("PNG"))
    store.catalog.claim(store.lifecycle.writer_id(), ["f" * 32])
    assert _sql(tmp_path, "SELECT count(*) FROM writers") == [(1,)]
    store.close()
    assert _sql(tmp_path, "SELECT count(*) FROM writers") == [(0,)]
    assert _sql(tmp_path, "SELECT count(*) FROM intents") == [(0,)]
    assert list((tmp_path / "tmp").iterdir()) == []  # its lock directory is gone too
