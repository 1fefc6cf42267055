"""Durable once acknowledged: the catalog's synchronous level, and the order of the steps.

A power cut cannot be produced here, so these tests check the two things it depends on:
every connection that writes the catalog runs ``synchronous=FULL`` (a COMMIT is on disk when
it returns), and the bytes are fsynced, renamed and their directory fsynced before the
transaction that records their row commits.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mediastore import MediaStore
from mediastore import testing as t

FULL = 2  # PRAGMA synchronous values: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_every_catalog_connection_is_synchronous_full(tmp_path: Path) -> None:
    """Every connection the engine opens (all writes go through it) runs FULL."""
    with MediaStore(tmp_path) as store:
        opened: list[sqlite3.Connection] = []
        event.listen(store.catalog.engine, "connect", lambda conn, _rec: opened.append(conn))
        store.catalog.engine.dispose()  # every connection from now on is seen

        def work(i: int) -> None:
            rec = store.add_bytes(t.noisy_jpeg(seed=i), url=f"https://x.test/{i}.jpg")
            store.get_by_url(f"https://x.test/{i}.jpg")
            store.remove(rec.md5) if i % 3 == 0 else None

        threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        store.gc()
        with store.catalog.engine.connect() as conn:
            levels = {conn.exec_driver_sql("PRAGMA synchronous").scalar()}
        levels |= {c.execute("PRAGMA synchronous").fetchone()[0] for c in opened}
        assert opened and levels == {FULL}
    # a separate plain connection sees the same file in WAL mode (a commit survives a crash)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_bytes_are_durable_before_their_row_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync(temp) < rename into place < fsync(directory) < INSERT of the row < its COMMIT."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", _fd_path(fd)))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst, **kw)

    with MediaStore(tmp_path) as store:
        event.listen(
            store.catalog.engine, "connect",
            lambda conn, _rec: conn.set_trace_callback(lambda sql: events.append(("sql", sql))),
        )  # fmt: skip
        store.catalog.engine.dispose()  # every connection from now on is traced
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        rec = store.add_bytes(t.image_bytes("PNG"), url="https://x.test/a.png")
        monkeypatch.undo()

    def first(pred: Any, after: int = 0) -> int:
        return next(i for i, e in enumerate(events) if i >= after and pred(e))

    temp_sync = first(lambda e: e[0] == "fsync" and "/tmp/ingest-" in e[1])
    rename = first(lambda e: e[0] == "rename" and e[1].endswith(f"{rec.md5}.png"))
    dir_sync = first(lambda e: e == ("fsync", str(tmp_path / "media" / "images")), rename)
    insert = first(lambda e: e[0] == "sql" and e[1].startswith("INSERT INTO media "))
    commit = first(lambda e: e == ("sql", "COMMIT"), insert)
    assert temp_sync < rename < dir_sync < insert < commit, events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_a_legacy_batch_is_durable_before_its_rows_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A legacy import batch: one syncfs of the store's filesystem < the renames into place
    < fsync(directory) < INSERT of the rows < their COMMIT (no fsync per temp file)."""
    from mediastore.blobs import local as blobs

    assert blobs._SYNCFS is not None, "Linux has syncfs(2)"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for i in range(blobs.SYNCFS_MIN + 4):
        (legacy / f"{i:032x}.jpg").write_bytes(t.noisy_jpeg(seed=i))
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_syncfs = os.fsync, os.replace, blobs._SYNCFS

    def syncfs(fd: int) -> int:
        events.append(("syncfs", _fd_path(fd)))
        return int(real_syncfs(fd))

    def fsync(fd: int) -> None:
        events.append(("fsync", _fd_path(fd)))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst, **kw)

    with MediaStore(tmp_path / "s") as store:
        event.listen(
            store.catalog.engine, "connect",
            lambda conn, _rec: conn.set_trace_callback(lambda sql: events.append(("sql", sql))),
        )  # fmt: skip
        store.catalog.engine.dispose()
        monkeypatch.setattr(blobs, "_SYNCFS", syncfs)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        report = store.import_legacy(legacy)
        monkeypatch.undo()
    assert report.imported == blobs.SYNCFS_MIN + 4

    def first(pred: Any, after: int = 0) -> int:
        return next(i for i, e in enumerate(events) if i >= after and pred(e))

    synced = first(lambda e: e[0] == "syncfs" and e[1] == str(tmp_path / "s" / "tmp"))
    rename = first(lambda e: e[0] == "rename" and e[1].endswith(".jpg"))  # (relative to dir fd)
    dir_sync = first(lambda e: e == ("fsync", str(tmp_path / "s" / "media" / "images")), rename)
    insert = first(lambda e: e[0] == "sql" and e[1].startswith("INSERT INTO media "))
    commit = first(lambda e: e == ("sql", "COMMIT"), insert)
    assert synced < rename < dir_sync < insert < commit, events
    assert not any(e[0] == "fsync" and "/tmp/ingest-" in e[1] for e in events)
