"""Near-duplicate images on each catalog (SQLite, PostgreSQL) and each blob store (disk, a
bucket): index() reads every image once from the blob store, the band query finds the
variants, and PostgreSQL reads the candidates from the band indexes."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mediastore import MediaStore
from mediastore import testing as t


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def test_index_similar_and_dupes_on_every_backend(backend_store: MediaStore) -> None:
    """The same picture as PNG, JPEG and a resized WebP is one group whose keeper is the PNG;
    an unrelated picture is in none; a second index() reads nothing."""
    picture = t.photo(11, (480, 360))
    png = backend_store.add_bytes(encode(picture, "PNG")).md5
    jpeg = backend_store.add_bytes(encode(picture, "JPEG")).md5
    webp = backend_store.add_bytes(encode(picture.resize((240, 180)), "WEBP")).md5
    backend_store.add_bytes(encode(t.photo(12, (480, 360)), "JPEG"))
    assert backend_store.index().hashed == 4
    assert backend_store.index().hashed == 0
    assert {hit.md5 for hit in backend_store.similar(png)} == {jpeg, webp}
    (group,) = backend_store.duplicate_groups()
    assert group.keeper.md5 == png and {o.md5 for o in group.others} == {jpeg, webp}


def test_the_band_query_reads_the_band_indexes_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL reads the band query's candidates from the three band indexes, not a scan
    of the table, once it holds enough rows for the planner to care."""
    MediaStore(tmp_path / "store", db_url=pg_url).close()
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size,"
                " created_at, status) SELECT md5(i::text), md5(i::text), 'image', 'image/png',"
                " 'png', 100, now(), 'ok' FROM generate_series(1, 20000) i"
            )
        )
        conn.execute(
            text(
                "INSERT INTO image_hashes (md5, pixel_hash, phash, band0, band1, band2, hashed_at)"
                " SELECT md5(i::text), md5(i::text), i, i % 4194304, (i * 7) % 2097152,"
                " (i * 13) % 2097152, now() FROM generate_series(1, 20000) i"
            )
        )
        conn.execute(text("ANALYZE image_hashes"))
        plan = "\n".join(
            conn.execute(
                text(
                    # the shape of the candidates' statement: one index read per band
                    "EXPLAIN SELECT phash FROM image_hashes WHERE band0 = ANY(ARRAY[1, 2, 3])"
                    " UNION ALL SELECT phash FROM image_hashes WHERE band1 = ANY(ARRAY[4, 5])"
                    " UNION ALL SELECT phash FROM image_hashes WHERE band2 = ANY(ARRAY[6, 7])"
                )
            ).scalars()
        )
    engine.dispose()
    assert plan.count("ix_image_hashes_band") == 3 and "Seq Scan" not in plan, plan
