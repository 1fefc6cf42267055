"""References in the catalog: taking, filling, dropping and listing them, and the reference
count of each file kept in the same transaction (``docs/lifecycle.md``, "References").

Every change to ``refs`` changes ``media.ref_count`` by the same number in the caller's
transaction, and sets ``media.unreferenced_since`` (the database's clock) when the count
falls to 0. A reference is taken by an UPDATE of the file's row *before* the reference row
is inserted: the UPDATE is the row lock a collection's tombstone (:func:`tombstone_unreferenced`)
also takes, and each re-checks the other's condition after it, so a reference and a
collection of the same content are ordered, on SQLite (one writer at a time) as on
PostgreSQL (the second UPDATE waits and reads the first's row).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, select, update

from ..records import STATUS_OK, STATUS_REMOVED, Reference
from ..references import RefTake
from .claims import db_epoch
from .engine import IN_BATCH, insert_rows
from .models import media as _media
from .models import refs as _refs
from .rows import url_key, utc

_REF_COLS = (
    _refs.c.ref,
    _refs.c.md5,
    _refs.c.url,
    _refs.c.position,
    _refs.c.role,
    _refs.c.created_at,
)
#: a key's references in its order: by position (those without one last), then as taken
_ORDER = (_refs.c.position.is_(None), _refs.c.position, _refs.c.id)


def reference_of(row: Any) -> Reference:
    ref, md5, url, position, role, created = row
    return Reference(
        ref=ref, md5=md5, url=url, position=position, role=role, created_at=utc(created)
    )


def take(
    conn: Connection,
    takes: Sequence[tuple[RefTake, str, str | None]],
    now: datetime,
    *,
    revive: bool = False,
) -> set[str]:
    """Take each ``(reference, md5, url)``; returns the md5s whose content is gone (removed
    or unknown), on which nothing was taken.

    ``revive``: the caller records the content in this transaction while holding an intent
    on it (its file is in place): a row a collection removed meanwhile is ``ok`` again.
    Taking a reference the key already has on that md5 updates its position and role.
    """
    by_md5: dict[str, list[tuple[RefTake, str | None]]] = {}
    for take_, md5, url in takes:
        by_md5.setdefault(md5, []).append((take_, url))
    gone: set[str] = set()
    for md5 in sorted(by_md5):  # one lock order for every writer
        wanted = {t.ref: (t, url) for t, url in by_md5[md5]}  # the last of a key wins
        existing = _existing(conn, md5, list(wanted))
        new = [key for key in wanted if key not in existing]
        if not _count(conn, md5, len(new), revive=revive):
            gone.add(md5)
            continue
        rows = [_row(wanted[key][0], md5, wanted[key][1], now) for key in new]
        _drop_waiting(conn, [(key, url) for key, (_, url) in wanted.items() if url is not None])
        insert_rows(conn, _refs, rows)
        for key, ref_id in existing.items():
            _update_place(conn, ref_id, wanted[key][0])
    return gone


def _drop_waiting(conn: Connection, pairs: Sequence[tuple[str, str]]) -> None:
    """Drop the rows of keys that waited on these URLs: they now hold the file itself."""
    for ref, url in pairs:
        conn.execute(
            delete(_refs).where(
                _refs.c.ref == ref, _refs.c.url_key == url_key(url), _refs.c.md5.is_(None)
            )
        )


def _existing(conn: Connection, md5: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), IN_BATCH):
        chunk = keys[start : start + IN_BATCH]
        stmt = select(_refs.c.ref, _refs.c.id).where(_refs.c.md5 == md5, _refs.c.ref.in_(chunk))
        found.update((r.ref, r.id) for r in conn.execute(stmt))
    return found


def _count(conn: Connection, md5: str, added: int, *, revive: bool) -> bool:
    """Add ``added`` to the row's count (locking it); False if the content is gone."""
    stmt = update(_media).where(_media.c.md5 == md5)
    values: dict[str, Any] = {"ref_count": _media.c.ref_count + added}
    if added:
        values["unreferenced_since"] = None
    if revive:
        values.update(status=STATUS_OK, removed_at=None)
    else:
        stmt = stmt.where(_media.c.status != STATUS_REMOVED)
    return bool(conn.execute(stmt.values(**values)).rowcount)


def _row(take_: RefTake, md5: str | None, url: str | None, now: datetime) -> dict[str, Any]:
    return {
        "ref": take_.ref,
        "md5": md5,
        "url": url,
        "url_key": url_key(url) if url is not None else None,
        "position": take_.position,
        "role": take_.role,
        "created_at": now,
    }


def _update_place(conn: Connection, ref_id: int, take_: RefTake) -> None:
    given = (("position", take_.position), ("role", take_.role))
    values = {name: value for name, value in given if value is not None}
    if values:
        conn.execute(update(_refs).where(_refs.c.id == ref_id).values(**values))


def take_pending(conn: Connection, takes: Sequence[tuple[RefTake, str]], now: datetime) -> None:
    """Take references on URLs that are not stored (their download failed): rows with no
    md5, which :func:`fill_pending` completes when the URL is first recorded."""
    for take_, url in takes:
        _take_pending(conn, take_, url, now)


def _take_pending(conn: Connection, take_: RefTake, url: str, now: datetime) -> None:
    key = url_key(url)
    stmt = select(_refs.c.id).where(
        _refs.c.ref == take_.ref, _refs.c.url_key == key, _refs.c.md5.is_(None)
    )
    found = conn.execute(stmt).scalar()
    if found is None:
        conn.execute(insert(_refs).values(**_row(take_, None, url, now)))
    else:
        _update_place(conn, found, take_)


def fill_pending(conn: Connection, recorded: dict[str, str], *, revive: bool = True) -> set[str]:
    """Point the references waiting on these URLs (url key -> md5 recorded in this
    transaction) at their content; a key that already holds that content keeps one row.
    Returns the md5s whose content was gone, whose references keep waiting.

    ``revive``: the caller holds an intent on each file (a record transaction), so a row a
    collection removed meanwhile is ``ok`` again; without it (a URL found by identity), a
    removed row is not filled and its references keep waiting on their URL.
    """
    keys = sorted(recorded)
    waiting: list[Any] = []
    for start in range(0, len(keys), IN_BATCH):
        chunk = keys[start : start + IN_BATCH]
        stmt = select(_refs.c.id, _refs.c.ref, _refs.c.url_key).where(
            _refs.c.url_key.in_(chunk), _refs.c.md5.is_(None)
        )
        waiting += conn.execute(stmt).all()
    by_md5: dict[str, list[tuple[int, str]]] = {}
    for ref_id, ref, key in waiting:
        by_md5.setdefault(recorded[key], []).append((ref_id, ref))
    gone: set[str] = set()
    for md5 in sorted(by_md5):  # the row first, in md5 order: as a reference is taken
        fill: dict[str, int] = {}
        extra: list[int] = []
        for ref_id, ref in sorted(by_md5[md5]):
            if ref in fill or _existing(conn, md5, [ref]):
                extra.append(ref_id)
            else:
                fill[ref] = ref_id
        if fill and not _count(conn, md5, len(fill), revive=revive):
            gone.add(md5)
            continue
        for ref_id in extra:
            conn.execute(delete(_refs).where(_refs.c.id == ref_id))
        for ref_id in fill.values():
            conn.execute(update(_refs).where(_refs.c.id == ref_id).values(md5=md5))
    return gone


def drop(conn: Connection, ref: str, *, md5: str | None = None, url: str | None = None) -> int:
    """Drop the key's references (all, or the one on ``md5`` / taken through ``url``);
    returns how many. A file whose count falls to 0 is unreferenced from now on."""
    stmt = delete(_refs).where(_refs.c.ref == ref)
    if md5 is not None:
        stmt = stmt.where(_refs.c.md5 == md5)
    if url is not None:
        stmt = stmt.where(_refs.c.url_key == url_key(url))
    dropped = [r.md5 for r in conn.execute(stmt.returning(_refs.c.md5))]
    for file_md5, count in sorted(Counter(m for m in dropped if m is not None).items()):
        _uncount(conn, file_md5, count)
    return len(dropped)


def _uncount(conn: Connection, md5: str, count: int) -> None:
    left = _media.c.ref_count - count  # SET reads the row as it was before the UPDATE
    conn.execute(
        update(_media)
        .where(_media.c.md5 == md5)
        .values(
            ref_count=left,
            unreferenced_since=case((left <= 0, db_epoch()), else_=_media.c.unreferenced_since),
        )
    )


def forget(conn: Connection, md5s: Sequence[str]) -> None:
    """Delete the references of content being removed (``rm`` forgets them with it)."""
    for start in range(0, len(md5s), IN_BATCH):
        chunk = list(md5s[start : start + IN_BATCH])
        conn.execute(delete(_refs).where(_refs.c.md5.in_(chunk)))


def of_md5(conn: Connection, md5: str) -> list[Reference]:
    stmt = select(*_REF_COLS).where(_refs.c.md5 == md5).order_by(_refs.c.ref, _refs.c.id)
    return [reference_of(r) for r in conn.execute(stmt)]


def of_key(conn: Connection, ref: str) -> list[Reference]:
    stmt = select(*_REF_COLS).where(_refs.c.ref == ref).order_by(*_ORDER)
    return [reference_of(r) for r in conn.execute(stmt)]


def md5s_of_key(ref: str) -> Any:
    """The md5s a key holds (a subquery for listings)."""
    return select(_refs.c.md5).where(_refs.c.ref == ref, _refs.c.md5.is_not(None))


def media_for_stmt(columns: Iterable[Any]) -> Any:
    """The live files a key holds, in its order (bind ``ref``)."""
    return (
        select(*columns)
        .select_from(_refs.join(_media, _media.c.md5 == _refs.c.md5))
        .where(_refs.c.ref == bindparam("ref"), _media.c.status != STATUS_REMOVED)
        .order_by(*_ORDER)
    )


def _past_grace(grace_seconds: int) -> Any:
    return and_(
        _media.c.unreferenced_since <= db_epoch() - grace_seconds,
        _media.c.status == STATUS_OK,
        _media.c.ref_count == 0,
    )


def unreferenced_stmt(grace_seconds: int) -> Any:
    """The md5s of content unreferenced for ``grace_seconds`` or more: a range read of
    ``ix_media_unreferenced_since`` (rows never referenced are not in it)."""
    return select(_media.c.md5).where(_past_grace(grace_seconds))


def lock_rows(conn: Connection, md5s: Iterable[str]) -> None:
    """On PostgreSQL, lock the rows of ``md5s`` in md5 order (``SELECT ... FOR UPDATE``).

    An UPDATE of many rows locks them in the order of its plan (a bitmap scan goes by heap
    page), so two transactions that each update several rows could take them in opposite
    orders and deadlock; every transaction that changes the rows of several files under
    references locks them here first, in one order. SQLite has one writer: nothing to do.
    """
    if conn.dialect.name != "postgresql":
        return
    ordered = sorted(set(md5s))
    for start in range(0, len(ordered), IN_BATCH):
        chunk = ordered[start : start + IN_BATCH]
        conn.execute(
            select(_media.c.md5)
            .where(_media.c.md5.in_(chunk))
            .order_by(_media.c.md5)
            .with_for_update()
        ).all()


def tombstone_unreferenced(
    conn: Connection, md5s: Sequence[str], grace_seconds: int, now: datetime
) -> list[str]:
    """Mark ``removed`` those of ``md5s`` that are still unreferenced past the grace period.

    The conditions are checked again by the UPDATE itself: a reference committed since the
    caller's read has raised the count (it wins), and on PostgreSQL a reference being taken
    now holds the row until it commits, after which the lock and the UPDATE re-read it. The
    rows are locked in md5 order first, as a batch taking references locks them.
    """
    lock_rows(conn, md5s)
    stmt = (
        update(_media)
        .where(_media.c.md5.in_(sorted(md5s)), _past_grace(grace_seconds))
        .values(status=STATUS_REMOVED, removed_at=now, unreferenced_since=None)
        .returning(_media.c.md5)
    )
    return sorted(conn.execute(stmt).scalars())


def stats(conn: Connection) -> tuple[int, int, int, int]:
    """(files, bytes) referenced and (files, bytes) unreferenced, of live content: two
    range reads of covering indexes."""
    live = _media.c.status != STATUS_REMOVED
    count = (func.count(), func.coalesce(func.sum(_media.c.size), 0))
    held = conn.execute(select(*count).where(_media.c.ref_count > 0, live)).one()
    lost = conn.execute(select(*count).where(_media.c.unreferenced_since.is_not(None), live)).one()
    return int(held[0]), int(held[1]), int(lost[0]), int(lost[1])
