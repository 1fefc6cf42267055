"""The stats counters: bumped in the writing transaction, summed for stats(), recounted from
the rows by gc."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from ..records import STATUS_OK, STATUS_REMOVED
from .models import media as _media
from .models import media_urls as _urls
from .models import stats_counters as _counters
from .reads import COUNTER_SUMS
from .rows import MediaRow, Recording


def counter_sums(conn: Connection) -> dict[str, tuple[int, int]]:
    return {name: (int(n), int(b)) for name, n, b in conn.execute(COUNTER_SUMS)}


def bump_counter(conn: Connection, name: str, count: int, size: int) -> None:
    """Add to a counter in the caller's transaction (on this backend's shard)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT mediastore_count(:n, :c, :b)"), {"n": name, "c": count, "b": size}
        )
        return
    conn.execute(_SQLITE_BUMP, {"n": name, "c": count, "b": size})


_SQLITE_BUMP = text(
    "INSERT INTO stats_counters (shard, name, count, bytes) VALUES (0, :n, :c, :b) "
    "ON CONFLICT (name, shard) DO UPDATE SET "
    "count = count + excluded.count, bytes = bytes + excluded.bytes"
)


#: Counters a recount derives from the rows (``dedup`` is history the rows do not hold).
_DERIVED = ("media:", "unverified", "urls", "shared_urls")


def recount(conn: Connection) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE media, media_urls IN SHARE MODE"))
    per_md5 = select(func.count()).where(_urls.c.md5 == _media.c.md5).scalar_subquery()
    conn.execute(update(_media).where(_media.c.url_count != per_md5).values(url_count=per_md5))
    truth = {
        f"media:{t}:{st}": (int(n), int(b))
        for t, st, n, b in conn.execute(
            select(
                _media.c.media_type,
                _media.c.status,
                func.count(),
                func.coalesce(func.sum(_media.c.size), 0),
            ).group_by(_media.c.media_type, _media.c.status)
        )
    }
    unverified = select(func.count()).where(
        _media.c.last_verified_at.is_(None), _media.c.status != STATUS_REMOVED
    )
    truth["unverified"] = (int(conn.execute(unverified).scalar_one()), 0)
    truth["urls"] = (int(conn.execute(select(func.count()).select_from(_urls)).scalar_one()), 0)
    extra = _media.c.url_count - 1
    shared = select(
        func.coalesce(func.sum(extra), 0), func.coalesce(func.sum(extra * _media.c.size), 0)
    ).where(_media.c.url_count > 1)
    n, b = conn.execute(shared).one()
    truth["shared_urls"] = (int(n), int(b))
    recorded = {k: v for k, v in counter_sums(conn).items() if k.startswith(_DERIVED)}
    wrong = {
        name: (truth.get(name, (0, 0)), recorded.get(name, (0, 0)))
        for name in truth.keys() | recorded.keys()
        if truth.get(name, (0, 0)) != recorded.get(name, (0, 0))
    }
    if wrong:
        conn.execute(delete(_counters).where(_counters.c.name.in_(sorted(wrong))))
        conn.execute(
            insert(_counters),
            [{"shard": 0, "name": k, "count": v[0][0], "bytes": v[0][1]} for k, v in wrong.items()],
        )
    return wrong


def count_dedup(conn: Connection, entries: Sequence[Recording], known: dict[str, MediaRow]) -> None:
    """Count the adds whose content was already stored, and the bytes they did not store."""
    seen = {m for m, row in known.items() if row.status == STATUS_OK}
    count = size = 0
    for entry in entries:
        if entry.adopt:
            continue
        if entry.media.md5 in seen:
            count += 1
            size += entry.media.size
        seen.add(entry.media.md5)
    if count:
        bump_counter(conn, "dedup", count, size)
