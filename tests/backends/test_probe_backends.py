"""probe() on each catalog (SQLite, PostgreSQL) and each blob store (disk, a bucket): files
stored before their metadata was read get it, each read once, and a rerun reads nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_videos import make_video
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mediastore import MediaFilter, MediaStore
from mediastore import testing as t


def test_probe_backfills_on_every_backend(backend_store: MediaStore, tmp_path: Path) -> None:
    """Rows made unread (as a catalog upgraded from 0009 has them) are read by probe() from
    the store's blob store and recorded in its catalog; filters then see them."""
    video = make_video(tmp_path, "clip", size="72x128", seconds=1, audio=False)
    md5 = backend_store.add_bytes(video).md5
    backend_store.add_bytes(t.pdf_bytes())
    engine = create_engine(backend_store.config.catalog_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE media SET metadata_read_at = NULL, duration = NULL, pages = NULL")
        )
    engine.dispose()
    assert not list(backend_store.list_media(MediaFilter(min_duration=0.5)))
    assert backend_store.stats(content=True).unprobed == 2
    report = backend_store.probe()
    assert report.read == 2 and not report.unreadable and not report.missing
    assert [r.md5 for r in backend_store.list_media(MediaFilter(min_duration=0.5))] == [md5]
    described = backend_store.describe(md5)
    assert described is not None and described.metadata is not None
    assert described.metadata.duration == pytest.approx(1.0, abs=0.05)
    assert backend_store.stats(content=True).pages == 1
    assert backend_store.probe().read == 0
