"""The similarity hashes in the catalog: which images still need them, recording them, and
the near-duplicate queries (``image_hashes``, revision 0012).

A perceptual hash query reads, for each band, the rows whose band is one of the values
:func:`mediastore.similarity.band_candidates` lists: index point lookups (SQLite's OR
optimization, PostgreSQL's bitmap OR), then the exact distance filters the candidates.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from ..records import STATUS_OK
from ..similarity import (
    band_candidates,
    bands,
    distance,
    to_signed,
    to_unsigned,
)
from .engine import IN_BATCH, insert_rows
from .models import image_hashes as _hashes
from .models import media as _media
from .rows import MEDIA_COLS, MediaRow, row_of

#: What a near-duplicate result is built from: the hashes and the keeper's criteria.
_HIT_COLS = (
    _hashes.c.md5,
    _hashes.c.pixel_hash,
    _hashes.c.phash,
    _media.c.width,
    _media.c.height,
    _media.c.size,
)

#: A hashed image: (md5, pixel hash, perceptual hash, width, height, size).
Hashed = tuple[str, str, int, int | None, int | None, int]


def _unhashed_where(stmt: Select[Any]) -> Select[Any]:
    """Live images with no ``image_hashes`` row."""
    hashed = select(_hashes.c.md5).where(_hashes.c.md5 == _media.c.md5).exists()
    return stmt.where(_media.c.status == STATUS_OK, _media.c.media_type == "image", ~hashed)


def unhashed(conn: Connection, after: str, limit: int) -> list[MediaRow]:
    """Live images without hashes, in md5 order after ``after``."""
    stmt = _unhashed_where(select(*MEDIA_COLS).where(_media.c.md5 > after))
    return [row_of(r) for r in conn.execute(stmt.order_by(_media.c.md5).limit(limit))]


def count_unhashed(conn: Connection) -> int:
    """Live images without hashes."""
    return int(conn.execute(_unhashed_where(select(func.count()))).scalar_one())


def record(
    conn: Connection, found: Sequence[tuple[str, str | None, int | None]], now: datetime
) -> int:
    """Record ``(md5, pixel hash, perceptual hash)`` of each image (None, None: did not
    decode); an md5 already recorded (a concurrent ``index``) is left. Returns rows added."""
    md5s = [md5 for md5, _, _ in found]
    existing: set[str] = set()
    for start in range(0, len(md5s), IN_BATCH):
        batch = md5s[start : start + IN_BATCH]
        existing.update(
            conn.execute(select(_hashes.c.md5).where(_hashes.c.md5.in_(batch))).scalars()
        )
    rows = [_row(md5, pixels, phash, now) for md5, pixels, phash in found if md5 not in existing]
    if rows:
        insert_rows(conn, _hashes, rows)
    return len(rows)


def _row(md5: str, pixels: str | None, phash: int | None, now: datetime) -> dict[str, Any]:
    parts: tuple[int | None, ...] = bands(phash) if phash is not None else (None, None, None)
    return {
        "md5": md5,
        "pixel_hash": pixels,
        "phash": None if phash is None else to_signed(phash),
        "band0": parts[0],
        "band1": parts[1],
        "band2": parts[2],
        "hashed_at": now,
    }


def hashes_of(conn: Connection, md5: str) -> tuple[str, int] | None:
    """(pixel hash, perceptual hash) recorded for ``md5``; None if not hashed or undecodable."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT pixel_hash, phash FROM image_hashes WHERE md5 = {mark} AND phash IS NOT NULL"
    found = conn.exec_driver_sql(sql, (md5,)).first()  # a point read: no statement to build
    return None if found is None else (found[0], to_unsigned(found[1]))


def near(conn: Connection, phash: int, max_distance: int) -> list[Hashed]:
    """Live hashed images whose perceptual hash is within ``max_distance`` of ``phash``.

    Two statements: the candidates' hashes from the band indexes alone (each index holds
    its band with the whole hash), then, for the hashes within the distance, their rows.
    Most candidates are further away: none of their rows is read.
    """
    lists = _Lists(conn.dialect.paramstyle == "qmark")
    candidates = band_candidates(phash, max_distance)
    sql = " UNION ALL ".join(
        f"SELECT phash FROM image_hashes WHERE {lists.among(f'band{i}', len(values))}"
        for i, values in enumerate(candidates)
    )
    close = {
        value
        for (value,) in conn.exec_driver_sql(sql, lists.params(*candidates))
        if distance(phash, to_unsigned(value)) <= max_distance
    }
    if not close:
        return []
    # the hash has no index of its own: the first band's index (band and hash) finds it
    firsts = sorted({bands(to_unsigned(value))[0] for value in close})
    rows_sql = (
        "SELECT h.md5, h.pixel_hash, h.phash, m.width, m.height, m.size"
        " FROM image_hashes h JOIN media m ON m.md5 = h.md5"
        f" WHERE {lists.among('h.band0', len(firsts))}"
        f" AND {lists.among('h.phash', len(close))} AND m.status = '{STATUS_OK}'"
    )
    params = lists.params(firsts, sorted(close))
    return [_hashed(row) for row in conn.exec_driver_sql(rows_sql, params)]


class _Lists:
    """Lists of values in the driver's own SQL, written by hand: SQLAlchemy's expansion of
    hundreds of IN parameters took longer than the query itself (about 1 ms at distance 4,
    10 ms at 8). SQLite: ``IN (?, ?, ...)``, one placeholder per value; PostgreSQL:
    ``= ANY(%s)``, one array per list (a short statement to parse and plan)."""

    def __init__(self, qmark: bool) -> None:
        self.qmark = qmark

    def among(self, column: str, count: int) -> str:
        if self.qmark:
            return f"{column} IN ({_marks(count)})"
        return f"{column} = ANY(%s)"

    def params(self, *lists: Sequence[int]) -> tuple[Any, ...]:
        if self.qmark:
            return tuple(value for values in lists for value in values)
        return tuple(list(values) for values in lists)


@functools.cache
def _marks(count: int) -> str:
    return ", ".join(["?"] * count)


def same_pixels(conn: Connection, pixels: str) -> list[Hashed]:
    """Live images whose decoded pixels hash to ``pixels``."""
    stmt = (
        select(*_HIT_COLS)
        .join(_media, _media.c.md5 == _hashes.c.md5)
        .where(_hashes.c.pixel_hash == pixels, _media.c.status == STATUS_OK)
        .order_by(_hashes.c.md5)
    )
    return [_hashed(row) for row in conn.execute(stmt)]


def _hashed(row: Any) -> Hashed:
    md5, pixels, phash, width, height, size = row
    return (md5, pixels, to_unsigned(phash), width, height, size)


def hashed_page(conn: Connection, after: str, limit: int) -> list[Hashed]:
    """Live hashed images in md5 order after ``after``."""
    stmt = (
        select(*_HIT_COLS)
        .join(_media, _media.c.md5 == _hashes.c.md5)
        .where(_hashes.c.md5 > after, _hashes.c.phash.is_not(None), _media.c.status == STATUS_OK)
        .order_by(_hashes.c.md5)
        .limit(limit)
    )
    return [_hashed(row) for row in conn.execute(stmt)]


def shared_pixel_hashes(conn: Connection, after: str, limit: int) -> list[str]:
    """Pixel hashes (in order, after ``after``) that several live images share."""
    stmt = (
        select(_hashes.c.pixel_hash)
        .join(_media, _media.c.md5 == _hashes.c.md5)
        .where(_hashes.c.pixel_hash > after, _media.c.status == STATUS_OK)
        .group_by(_hashes.c.pixel_hash)
        .having(func.count() > 1)
        .order_by(_hashes.c.pixel_hash)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())
