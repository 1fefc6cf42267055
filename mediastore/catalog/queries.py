"""The catalog's transactions: :class:`Catalog`, every query the store runs, with Core statements
built once (no ORM objects on hot paths)."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..errors import CatalogError, HashCollisionError, InvalidInputError, ReadOnlyStoreError
from ..identity import Identity
from ..records import STATUS_OK, STATUS_REMOVED, MediaMetadata, Reference
from ..references import RefTake
from . import claims, similar
from . import refs as references
from .counters import count_dedup, counter_sums, recount
from .engine import (
    IN_BATCH,
    SNAPSHOT,
    WRITE,
    insert_rows,
    make_engine,
    sqlite_path,
)
from .models import UTCDateTime
from .models import host_pauses as _pauses
from .models import media as _media
from .models import media_urls as _urls
from .models import moved_blobs as _moved
from .models import store_info as _info
from .models import store_moves as _moves
from .models import url_failures as _failures
from .models import url_history as _history
from .pending import PendingUrls
from .reads import (
    BY_IDENTITY,
    BY_MD5,
    BY_PLAIN_IDENTITY,
    BY_URL,
    MEDIA_FOR,
    OLDEST_VERIFIED,
    point_reads,
)
from .rows import (
    MEDIA_COLS,
    METADATA_COLS,
    METADATA_COLUMNS,
    MediaRow,
    MoveRow,
    NewMedia,
    Recording,
    UrlInfo,
    legacy_url_key,
    metadata_of,
    metadata_values,
    row_of,
    url_key,
    utc,
)
from .schema import ensure_schema

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Tries of a write transaction that meets another writer's conflicting commit.
RETRY_ATTEMPTS = 8
RETRY_BASE_SECONDS = 0.005
#: SQLSTATEs that mean "run the transaction again": serialization failure, deadlock, and
#: a unique violation (another host committed the same key first: the retry sees it).
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})


def _retryable(exc: BaseException | None) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    return getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES


class IntentLostError(CatalogError):
    """A writer's intents were reaped before it recorded; nothing was recorded."""


class PlacementNeeded(Exception):
    """Entries relied on files whose rows are no longer ``ok``: place them, then retry."""

    def __init__(self, md5s: set[str]) -> None:
        super().__init__(f"files to place first: {sorted(md5s)}")
        self.md5s = md5s


class Exclusive:
    """What a remover may do inside :meth:`Catalog.exclusive` (one write transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def held(self, md5s: Sequence[str]) -> set[str]:
        """The md5s some writer holds an intent on: leave their files alone."""
        return claims.held(self._conn, list(md5s))

    def rows(self, md5s: Sequence[str]) -> dict[str, MediaRow]:
        return _rows_in(self._conn, md5s)

    def set_status(self, md5s: Sequence[str], status: str) -> None:
        """Mark rows missing or corrupt (their URLs and times are kept)."""
        if md5s:
            self._conn.execute(_SET_STATUS, [{"b_md5": m, "b_status": status} for m in md5s])


def _check_reliance(entries: Sequence[Recording], known: dict[str, MediaRow]) -> None:
    """Refuse to record reliance on a file whose row says it is not there any more."""
    placed = {e.media.md5 for e in entries if e.placed}
    lapsed = {
        e.media.md5
        for e in entries
        if e.media.md5 not in placed
        and not _refused_adoption(e, known)
        and (
            (row := known.get(e.media.md5)) is None or row.status not in (STATUS_OK, STATUS_REMOVED)
        )
    }
    if lapsed:
        raise PlacementNeeded(lapsed)


def _refused_adoption(entry: Recording, known: dict[str, MediaRow]) -> bool:
    """An adoption of content that was removed: nothing of it is recorded."""
    row = known.get(entry.media.md5)
    return entry.adopt and row is not None and row.status == STATUS_REMOVED


def _new_rows(
    entries: Sequence[Recording], known: dict[str, MediaRow], now: datetime
) -> tuple[list[dict[str, Any]], set[str]]:
    """Rows to insert, and md5s whose row turns ``ok`` again; ``known`` gains the new rows."""
    inserts: list[dict[str, Any]] = []
    revived: set[str] = set()
    for entry in entries:
        media = entry.media
        row = known.get(media.md5)
        if row is not None:
            check_same_content(row, media)
            if row.status != STATUS_OK and not _refused_adoption(entry, known):
                revived.add(media.md5)
            continue
        values = media.row_values()
        known[media.md5] = MediaRow(
            **values, created_at=now, last_verified_at=None, status=STATUS_OK
        )
        meta = metadata_values(media.metadata, now)
        inserts.append({**values, **meta, "created_at": now, "status": STATUS_OK})
    return inserts, revived


def _rows_in(conn: Connection, md5s: Sequence[str]) -> dict[str, MediaRow]:
    found: dict[str, MediaRow] = {}
    unique = list(dict.fromkeys(md5s))
    if len(unique) == 1:  # the common single commit: no IN list to expand and compile
        row = conn.execute(BY_MD5, {"md5": unique[0]}).first()
        return {unique[0]: row_of(row)} if row else {}
    for start in range(0, len(unique), IN_BATCH):
        stmt = select(*MEDIA_COLS).where(_media.c.md5.in_(unique[start : start + IN_BATCH]))
        found.update((r.md5, r) for r in map(row_of, conn.execute(stmt)))
    return found


_URLS_FOR = (
    select(_urls.c.url)
    .where(_urls.c.md5 == bindparam("md5"), _urls.c.url.is_not(None))
    .order_by(_urls.c.id)
)
_URL_COLS = (_urls.c.id, _urls.c.url_key, _urls.c.url, _urls.c.md5)
_URL_ROW = select(*_URL_COLS).where(_urls.c.url_key == bindparam("url_key"))
_SET_STATUS = (
    update(_media).where(_media.c.md5 == bindparam("b_md5")).values(status=bindparam("b_status"))
)
_REVIVE = (
    update(_media)
    .where(_media.c.md5 == bindparam("b_md5"))
    .values(status=STATUS_OK, removed_at=None)
)


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """On the main thread, a Ctrl-C during a write transaction is raised when it has ended.

    A KeyboardInterrupt raised inside one (say right after BEGIN IMMEDIATE, before the
    engine knows a transaction began) leaves its connection holding SQLite's write lock,
    and closing the store then waits for it forever. Transactions are short: the interrupt
    waits milliseconds. A handler of the application's own is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt


class Catalog:
    """The catalog database. Thread-safe: every call takes its own pooled connection."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float,
        create_if_empty: bool = True,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self.read_only = read_only
        path = sqlite_path(url)
        self._where = str(path or make_url_safe(url))
        with self._errors("open"):
            self.engine: Engine = make_engine(
                url, busy_timeout=busy_timeout, read_only=read_only, create=create_if_empty
            )
            ensure_schema(self.engine, create_if_empty=create_if_empty and not read_only)
        self._sqlite = path is not None
        # claims, heartbeats and verification times on connections of their own that stay
        # at NORMAL: switching one connection's level around each of them cost two more
        # statements (and GIL hand-offs) per claim on the commit chain
        self._relaxed = (
            make_engine(url, busy_timeout=busy_timeout, create=False, synchronous="NORMAL")
            if path is not None and not read_only
            else self.engine
        )
        self._points = point_reads(self.engine, path, busy_timeout, read_only=read_only)
        self._write_lock = threading.Lock()
        #: URLs found by identity, waiting to be recorded (:meth:`attach_url`)
        self.pending = PendingUrls(self._attach_urls)

    def close(self) -> None:
        self.pending.close()
        if self._points is not None:
            self._points.close()
        self._relaxed.dispose()
        self.engine.dispose()

    def _point(self, name: str, stmt: Select[Any], value: str) -> MediaRow | None:
        if self._points is not None:
            try:
                return self._points.one(name, value)
            except self._points.error as exc:
                raise CatalogError(f"catalog {self._where}: read failed: {exc}") from exc
        with self._read() as conn:
            row = conn.execute(stmt, {name: value}).first()
        return row_of(row) if row else None

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy errors into a CatalogError that names the catalog."""
        try:
            yield
        except SQLAlchemyError as exc:
            orig = exc.orig if isinstance(exc, DBAPIError) else exc
            raise CatalogError(f"catalog {self._where}: {action} failed: {orig}") from exc

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        with self._errors("read"), self.engine.connect() as conn:
            if snapshot:
                with conn.execution_options(**SNAPSHOT).begin():
                    yield conn
            else:
                yield conn

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction; ``durable=False`` for one a power cut may lose harmlessly.

        Claims and heartbeats protect a writer only while it lives, and a power cut ends
        it: their commits skip the WAL fsync, and the next durable commit syncs them too.
        """
        # Threads of this process queue on a lock rather than on SQLite's busy handler, which
        # polls with sleeps of up to 100 ms; other processes still meet the busy timeout.
        if self.read_only:
            raise ReadOnlyStoreError(f"catalog {self._where} is open read-only")
        with (
            _interrupt_deferred(),
            self._write_lock,
            self._errors("write"),
            (self.engine if durable else self._relaxed)
            .connect()
            .execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            yield conn

    def _transact(self, body: Callable[[Connection], T], *, durable: bool = True) -> T:
        """``body`` in a write transaction, run again after a conflict the database reports.

        Writers on other hosts meet in the database: a serialization failure, a deadlock or
        a unique key another writer has just committed (two hosts adding one URL) rolls the
        transaction back, and running it again sees what the other writer did. Bounded,
        with jittered exponential backoff; then the error is a :class:`CatalogError`.
        """
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                with self._write(durable=durable) as conn:
                    return body(conn)
            except CatalogError as exc:
                if attempt == RETRY_ATTEMPTS or not _retryable(exc.__cause__):
                    raise
                log.debug("catalog %s: retrying after %s", self._where, exc)
                time.sleep(RETRY_BASE_SECONDS * 2**attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    # --- lookups -------------------------------------------------------------------------
    def by_md5(self, md5: str) -> MediaRow | None:
        return self._point("md5", BY_MD5, md5)

    def by_url(self, url: str) -> MediaRow | None:
        return self._point("url_key", BY_URL, url_key(url))

    def by_legacy_key(self, key: str) -> MediaRow | None:
        """The media of a legacy-imported URL hash whose URL is not known yet.

        Found by the MD5 of the URL alone, as the legacy cache named its files: a URL made
        to collide with a legacy file's name would be given that file, as the old system
        would have given it.
        """
        return self._point("url_key", BY_URL, legacy_url_key(key))

    def by_identity(self, identity: str, variant: str | None) -> MediaRow | None:
        """Stored content (``ok``) that a URL of this identity and variant names, if any.

        One indexed read, by (identity, variant) on the URL rows.
        """
        if self._points is not None:
            try:
                return self._points.by_identity(identity, variant)
            except self._points.error as exc:
                raise CatalogError(f"catalog {self._where}: read failed: {exc}") from exc
        if variant is None:
            stmt, params = BY_PLAIN_IDENTITY, {"identity": identity}
        else:
            stmt, params = BY_IDENTITY, {"identity": identity, "variant": variant}
        with self._read() as conn:
            row = conn.execute(stmt, params).first()
        return row_of(row) if row else None

    def identity_rows(self, identity: str) -> list[tuple[str | None, int | None, str, MediaRow]]:
        """(variant, rank, a URL, the row) of each stored (``ok``) file that a URL of this
        identity names, one per content, in no particular order."""
        self.flush_urls()
        stmt = (
            select(_urls.c.variant, _urls.c.variant_rank, _urls.c.url, *MEDIA_COLS)
            .join_from(_urls, _media, _urls.c.md5 == _media.c.md5)
            .where(_urls.c.identity == identity, _media.c.status == STATUS_OK)
            .order_by(_urls.c.id)
        )
        found: dict[str, tuple[str | None, int | None, str, MediaRow]] = {}
        with self._read() as conn:
            for row in conn.execute(stmt):
                variant, rank, url, *media = row
                found.setdefault(media[0], (variant, rank, url, MediaRow(*media)))
        return list(found.values())

    def identity_of(self, md5: str) -> str | None:
        """The identity some URL of this content has, if any."""
        self.flush_urls()
        stmt = (
            select(_urls.c.identity)
            .where(_urls.c.md5 == md5, _urls.c.identity.is_not(None))
            .limit(1)
        )
        with self._read() as conn:
            return conn.execute(stmt).scalar()

    def failure(self, url: str) -> tuple[str, int | None, str, datetime] | None:
        """(error class, HTTP status, reason, when) of ``url``'s last permanent failure."""
        stmt = select(
            _failures.c.error, _failures.c.status, _failures.c.reason, _failures.c.failed_at
        ).where(_failures.c.url_key == url_key(url))
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def failures(
        self, limit: int | None = None
    ) -> list[tuple[str, str, int | None, str, datetime]]:
        """(url, error class, HTTP status, reason, when) of remembered failures, latest first."""
        stmt = (
            select(
                _failures.c.url,
                _failures.c.error,
                _failures.c.status,
                _failures.c.reason,
                _failures.c.failed_at,
            )
            .order_by(_failures.c.failed_at.desc(), _failures.c.url_key)
            .limit(limit)
        )
        with self._read() as conn:
            return [(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(stmt)]

    def remember_failure(
        self, url: str, error: str, status: int | None, reason: str, now: datetime
    ) -> None:
        """Record ``url``'s permanent failure (replacing an older one); not synced to the disk:
        a failure lost to a power cut costs one request again."""
        key = url_key(url)
        values = {"url": url, "error": error, "status": status, "reason": reason, "failed_at": now}

        self._transact(lambda conn: _set_row(conn, _failures.c.url_key, key, values), durable=False)

    def url_identities(self, after: int, limit: int) -> list[tuple[int, str, UrlIdentity]]:
        """(id, url, (identity, variant, rank, expiry)) of up to ``limit`` URL rows with an
        id above ``after``, by id (legacy rows without a URL are left out)."""
        self.flush_urls()
        stmt = (
            select(
                _urls.c.id,
                _urls.c.url,
                _urls.c.identity,
                _urls.c.variant,
                _urls.c.variant_rank,
                _urls.c.expires_at,
            )
            .where(_urls.c.id > after, _urls.c.url.is_not(None))
            .order_by(_urls.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [(r[0], r[1], (r[2], r[3], r[4], r[5])) for r in conn.execute(stmt)]

    def last_url_id(self) -> int:
        """The highest URL row id (0 for none): the extent of a walk by id."""
        with self._read() as conn:
            return int(conn.execute(select(func.max(_urls.c.id))).scalar() or 0)

    def set_url_identities(self, changes: Sequence[tuple[int, UrlIdentity]]) -> None:
        """Give URL rows (by id) their identity, variant, rank and expiry, in one transaction."""
        params = [
            {"b_id": row_id, "identity": i, "variant": v, "variant_rank": r, "expires_at": e}
            for row_id, (i, v, r, e) in changes
        ]
        if params:
            self._transact(lambda conn: conn.execute(_SET_IDENTITY, params))

    def take_lease(self, key: str, token: str, seconds: int) -> bool:
        """Hold the download lease ``key`` (see :func:`claims.take_lease`); not synced to the
        disk: a lease lost to a power cut only lets a second download start."""
        return self._transact(
            lambda conn: claims.take_lease(conn, key, token, seconds), durable=False
        )

    def drop_lease(self, key: str, token: str) -> None:
        self._transact(lambda conn: claims.drop_lease(conn, key, token), durable=False)

    def lease_held(self, key: str) -> bool:
        with self._read() as conn:
            return claims.lease_held(conn, key)

    def pause_host(self, host: str, until: datetime) -> None:
        """Remember that ``host`` asked to be left alone until ``until`` (a later pause
        recorded meanwhile stays); not synced to the disk, as failures are not."""

        def body(conn: Connection) -> None:
            known = conn.execute(select(_pauses.c.until).where(_pauses.c.host == host)).scalar()
            if known is None or utc(known) < until:
                _set_row(conn, _pauses.c.host, host, {"until": until})

        self._transact(body, durable=False)

    def host_pauses(self, now: datetime) -> dict[str, datetime]:
        """Hosts that asked to be left alone until after ``now``, and until when."""
        stmt = select(_pauses.c.host, _pauses.c.until).where(_pauses.c.until > now)
        with self._read() as conn:
            return {host: until for host, until in conn.execute(stmt)}

    def forget_failure(self, url: str) -> None:
        """Drop ``url``'s remembered failure (it succeeded)."""
        stmt = delete(_failures).where(_failures.c.url_key == url_key(url))
        self._transact(lambda conn: conn.execute(stmt), durable=False)

    def attach_url(self, md5: str, url: str, found: Identity) -> None:
        """Record one more URL for stored content (found by its identity), soon: a writer
        thread records such URLs in batches (see :class:`PendingUrls`); :meth:`flush_urls`
        writes them now."""
        self.pending.add(md5, url, found)

    def flush_urls(self) -> None:
        """Record the URLs :meth:`attach_url` holds. Each read of URL rows other than the
        point lookups does this first, so that it sees the URLs lookups have found; never
        call it inside a write transaction (the writer thread may be waiting for it)."""
        self.pending.flush()

    def _attach_urls(self, entries: Sequence[tuple[str, UrlInfo]], now: datetime) -> None:
        """Record URLs that are not known yet, for content that is still ``ok``, in one
        statement run for each (see :data:`_ATTACH_URL`)."""
        params = [
            {
                "b_url": info.url,
                "b_url_key": info.key,
                "b_url_md5": info.url_md5,
                "b_md5": md5,
                "b_now": now,
                "b_identity": info.identity,
                "b_variant": info.variant,
                "b_rank": info.rank,
                "b_expires_at": info.expires_at,
            }
            for md5, info in entries
        ]
        recorded = {info.key: md5 for md5, info in entries}

        def body(conn: Connection) -> None:
            conn.execute(_ATTACH_URL, params)
            # references that waited on one of these URLs (its download failed) now hold
            # the content the identity found, unless it was removed since
            references.fill_pending(conn, recorded, revive=False)

        # not synced to the disk: a power cut may lose the rows, which the identity finds
        # again (and the references keep waiting until it does)
        self._transact(body, durable=False)

    def claim_legacy_url(self, key: str, url: str) -> None:
        """Fill in the URL of a legacy row now that a lookup named it (unless it is known)."""
        new_key = url_key(url)
        known = select(_urls.c.id).where(_urls.c.url_key == new_key).exists()
        stmt = (
            update(_urls)
            .where(_urls.c.url_key == legacy_url_key(key), ~known)
            .values(url=url, url_key=new_key, source="legacy")
        )
        self._transact(lambda conn: conn.execute(stmt))

    def urls_for(self, md5: str) -> list[str]:
        self.flush_urls()
        with self._read() as conn:
            return list(conn.execute(_URLS_FOR, {"md5": md5}).scalars())

    def url_validators(self, url: str) -> tuple[str | None, str | None]:
        """ETag and Last-Modified recorded for ``url`` at its last download."""
        self.flush_urls()
        stmt = select(_urls.c.etag, _urls.c.last_modified).where(_urls.c.url_key == url_key(url))
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return (row[0], row[1]) if row else (None, None)

    def iter_md5s(
        self, *, verified_before: datetime | None = None, limit: int | None = None
    ) -> list[str]:
        """Md5s to verify, least recently verified first (never-verified before all).

        Ordered by the verification time alone, so that the index delivers the order and a
        ``limit`` stops the scan early (a tie-breaker would force a sort of every match).
        """
        stmt = (
            select(_media.c.md5)
            .where(_media.c.status != STATUS_REMOVED)
            .order_by(_media.c.last_verified_at.asc().nulls_first())
        )
        if verified_before is not None:
            stmt = stmt.where(
                or_(
                    _media.c.last_verified_at.is_(None), _media.c.last_verified_at < verified_before
                )
            )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return list(conn.execute(stmt).scalars())

    def existing_url_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these URL hashes are recorded (queried in batches)."""
        self.flush_urls()
        found: set[str] = set()
        with self._read() as conn:
            for start in range(0, len(keys), IN_BATCH):
                batch = list(keys[start : start + IN_BATCH])
                stmt = select(_urls.c.url_md5).where(_urls.c.url_md5.in_(batch))
                found.update(conn.execute(stmt).scalars())
        return found

    def _pages(self, query: Select[Any], column: Any, page: int) -> Iterator[list[Any]]:
        """The rows of ``query`` a page at a time, in ``column``'s order (keyset pagination:
        each page is one indexed range read from the last key seen)."""
        last = ""
        while True:
            stmt = query.where(column > last).order_by(column).limit(page)
            with self._read() as conn:
                rows = list(conn.execute(stmt))
            if not rows:
                return
            yield rows
            last = getattr(rows[-1], column.name)

    def iter_media(self, page: int = 1000) -> Iterator[list[MediaRow]]:
        """Every media row, a page at a time, in md5 order."""
        for rows in self._pages(select(*MEDIA_COLS), _media.c.md5, page):
            yield [row_of(r) for r in rows]

    # --- writers and intents (see claims.py) ------------------------------------------------
    def open_writer(self, label: str) -> str:
        """Register this store as a writer; returns its id."""
        return self._transact(lambda conn: claims.add_writer(conn, label), durable=False)

    def heartbeat(self, writer: str, label: str) -> bool:
        """Keep ``writer`` alive; False if it had been reaped (its intents were lost)."""
        return self._transact(lambda conn: claims.beat(conn, writer, label), durable=False)

    def close_writer(self, writer: str) -> None:
        self._transact(lambda conn: claims.drop_writer(conn, writer), durable=False)

    def reap_writers(self, lease_seconds: int) -> int:
        """Drop writers silent for longer than the lease (by the database's clock)."""
        return self._transact(lambda conn: claims.reap_writers(conn, lease_seconds), durable=False)

    def claim(self, writer: str, md5s: Sequence[str]) -> dict[str, MediaRow]:
        """Hold an intent on each md5 and return the rows they have, in one transaction.

        From this commit on no remover touches those files, and what the rows say is what a
        remover would have to change first: the writer may rely on an ``ok`` row's file.
        """
        unique = list(dict.fromkeys(md5s))

        def body(conn: Connection) -> dict[str, MediaRow]:
            claims.hold(conn, writer, unique)
            return _rows_in(conn, unique)

        return self._transact(body, durable=False)

    def release(self, writer: str, md5s: Sequence[str]) -> None:
        """Drop intents without recording anything (the commit failed or was refused)."""
        unique = list(dict.fromkeys(md5s))
        self._transact(lambda conn: claims.release(conn, writer, unique), durable=False)

    def record_many(
        self, writer: str, entries: Sequence[Recording], now: datetime
    ) -> list[MediaRow]:
        """Record placed or confirmed files and their URLs; drop the writer's intents on them.

        One transaction, all or nothing, a handful of statements per batch. An entry that
        relied on a file already in place (``placed`` false) needs its row still ``ok`` or
        ``removed`` (an ``rm`` since the claim leaves the file, which the intent protects).

        Raises:
            IntentLostError: the writer's intents were reaped (it was silent for longer than
                the lease): nothing is recorded, as a remover may have taken the files.
            PlacementNeeded: an entry relied on a file whose row is no longer ``ok``.
            HashCollisionError: a md5 is known with another SHA-256 or size.
        """
        md5s = sorted({e.media.md5 for e in entries})  # one lock order for every writer
        return self._transact(lambda conn: self._record(conn, writer, md5s, entries, now))

    def _record(
        self,
        conn: Connection,
        writer: str,
        md5s: list[str],
        entries: Sequence[Recording],
        now: datetime,
    ) -> list[MediaRow]:
        if claims.release(conn, writer, md5s) < len(md5s):
            raise IntentLostError(
                "this writer's intents expired (it was silent for longer than the lease); "
                "nothing was recorded"
            )
        if any(e.refs for e in entries):  # the order a collection locks them in (refs.py)
            references.lock_rows(conn, md5s)
        known = _rows_in(conn, md5s)
        _check_reliance(entries, known)
        refused = [_refused_adoption(e, known) for e in entries]
        count_dedup(conn, entries, known)
        inserts, revived = _new_rows(entries, known, now)
        if inserts:
            insert_rows(conn, _media, sorted(inserts, key=lambda r: str(r["md5"])))
        for md5 in sorted(revived):
            conn.execute(_REVIVE, {"b_md5": md5})
            known[md5] = known[md5]._replace(status=STATUS_OK)
        urls = [
            (e.media.md5, info)
            for e, no in zip(entries, refused, strict=True)
            if not no
            for info in e.urls
        ]
        self._upsert_urls(conn, urls, now)
        _take_recorded_refs(conn, entries, refused, urls, now)
        return [known[e.media.md5] for e in entries]

    def tombstone(self, md5: str, now: datetime) -> MediaRow | None:
        """Forget ``md5`` (``rm``): status ``removed``, its URLs and references deleted, in
        one transaction.

        Returns the row as it was, or None if there was none (or it was already removed).
        """

        def body(conn: Connection) -> MediaRow | None:
            row = _rows_in(conn, [md5]).get(md5)
            if row is None or row.status == STATUS_REMOVED:
                return None
            _forget_urls(conn, [md5], now)
            references.forget(conn, [md5])
            conn.execute(
                update(_media)
                .where(_media.c.md5 == md5)
                .values(status=STATUS_REMOVED, removed_at=now, ref_count=0, unreferenced_since=None)
            )
            return row

        return self._transact(body)

    # --- references (see refs.py) ----------------------------------------------------------
    def take_refs(
        self, takes: Sequence[tuple[RefTake, str, str | None]], now: datetime
    ) -> set[str]:
        """Take each ``(reference, md5, url)`` in one transaction; returns the md5s whose
        content is gone (removed, or never stored), on which nothing was taken."""
        if not takes:
            return set()
        return self._transact(lambda conn: references.take(conn, takes, now))

    def take_pending_refs(self, takes: Sequence[tuple[RefTake, str]], now: datetime) -> None:
        """Take references on URLs whose download failed (no file yet)."""
        if takes:
            self._transact(lambda conn: references.take_pending(conn, takes, now))

    def drop_refs(self, ref: str, *, md5: str | None = None, url: str | None = None) -> int:
        """Drop a key's references (all, or the one on ``md5`` / ``url``); how many."""
        return self._transact(lambda conn: references.drop(conn, ref, md5=md5, url=url))

    def refs_of(self, md5: str) -> list[Reference]:
        """The references on ``md5``, by key."""
        with self._read() as conn:
            return references.of_md5(conn, md5)

    def refs_named(self, ref: str) -> list[Reference]:
        """Every reference of a key (those waiting on a URL too), in its order."""
        with self._read() as conn:
            return references.of_key(conn, ref)

    def media_for(self, ref: str) -> list[MediaRow]:
        """The live files a key holds, in its order (one range of the key's index)."""
        if self._points is not None:
            try:
                return self._points.media_for(ref)
            except self._points.error as exc:
                raise CatalogError(f"catalog {self._where}: read failed: {exc}") from exc
        with self._read() as conn:
            return [row_of(r) for r in conn.execute(MEDIA_FOR, {"ref": ref})]

    def unreferenced(self, grace_seconds: int) -> list[str]:
        """Md5s of content unreferenced for at least ``grace_seconds`` (database clock)."""
        with self._read() as conn:
            return list(conn.execute(references.unreferenced_stmt(grace_seconds)).scalars())

    def tombstone_unreferenced(
        self, md5s: Sequence[str], grace_seconds: int, now: datetime
    ) -> list[str]:
        """Remove (as ``rm`` does) those of ``md5s`` still unreferenced past the grace
        period, re-checked in this transaction; the md5s removed."""

        def body(conn: Connection) -> list[str]:
            gone = references.tombstone_unreferenced(conn, md5s, grace_seconds, now)
            _forget_urls(conn, gone, now)
            return gone

        return self._transact(body) if md5s else []

    def ref_stats(self) -> tuple[int, int, int, int]:
        """(files, bytes) referenced, then (files, bytes) unreferenced, of live content."""
        with self._read(snapshot=True) as conn:
            return references.stats(conn)

    # --- similarity hashes (see similar.py) -----------------------------------------------
    def unhashed(self, after: str, limit: int) -> list[MediaRow]:
        """Live images without similarity hashes, in md5 order after ``after``."""
        with self._read() as conn:
            return similar.unhashed(conn, after, limit)

    def count_unhashed(self) -> int:
        """Live images without similarity hashes."""
        with self._read() as conn:
            return similar.count_unhashed(conn)

    def record_hashes(
        self, found: Sequence[tuple[str, str | None, int | None]], now: datetime
    ) -> int:
        """Record ``(md5, pixel hash, perceptual hash)`` per image in one transaction.

        Returns the rows added (an md5 a concurrent ``index`` recorded is left).
        """
        if not found:
            return 0
        return self._transact(lambda conn: similar.record(conn, found, now))

    def hashes_of(self, md5: str) -> tuple[str, int] | None:
        """(pixel hash, perceptual hash) of ``md5``; None if not hashed (or undecodable)."""
        with self._read() as conn:
            return similar.hashes_of(conn, md5)

    def near(self, phash: int, max_distance: int) -> list[similar.Hashed]:
        """Live hashed images within ``max_distance`` of ``phash`` (an indexed query)."""
        with self._read() as conn:
            return similar.near(conn, phash, max_distance)

    def near_md5(
        self, md5: str, max_distance: int
    ) -> tuple[tuple[str, int], list[similar.Hashed]] | None:
        """The hashes of ``md5`` and the live images near them, read on one connection (a
        round trip or two fewer to a server); None if ``md5`` has no hashes."""
        with self._read() as conn:
            recorded = similar.hashes_of(conn, md5)
            if recorded is None:
                return None
            return recorded, similar.near(conn, recorded[1], max_distance)

    def same_pixels(self, pixels: str) -> list[similar.Hashed]:
        """Live images whose decoded pixels hash to ``pixels``."""
        with self._read() as conn:
            return similar.same_pixels(conn, pixels)

    def hashed_page(self, after: str, limit: int) -> list[similar.Hashed]:
        """Live hashed images in md5 order after ``after``."""
        with self._read() as conn:
            return similar.hashed_page(conn, after, limit)

    def shared_pixel_hashes(self, after: str, limit: int) -> list[str]:
        """Pixel hashes several live images share, in order after ``after``."""
        with self._read() as conn:
            return similar.shared_pixel_hashes(conn, after, limit)

    @contextmanager
    def exclusive(self) -> Iterator[Exclusive]:
        """A write transaction in which a remover checks intents and acts on files.

        Nothing can claim an md5 that :meth:`Exclusive.held` has checked while it is open
        (SQLite's write lock; on PostgreSQL, advisory locks on those md5s), so a file found
        unheld stays unheld until the transaction ends: move or delete it inside.
        """
        with self._write() as conn:
            yield Exclusive(conn)

    def mark_verified(self, md5s: Sequence[str], when: datetime) -> None:
        """Record a passed check; a row that changed status meanwhile is left alone."""
        ordered = sorted(md5s)
        # one statement per page of md5s: an executemany runs the statement once per row
        pages = [ordered[start : start + IN_BATCH] for start in range(0, len(ordered), IN_BATCH)]
        ok = _media.c.status == STATUS_OK

        def body(conn: Connection) -> None:
            for page in pages:
                stmt = update(_media).where(_media.c.md5.in_(page), ok)
                conn.execute(stmt.values(last_verified_at=when))

        if pages:
            self._transact(body, durable=False)

    def removed_md5s(self, page: int = 500) -> Iterator[list[str]]:
        """Md5s of removed content (whose file may still need deleting), a page at a time."""
        removed = select(_media.c.md5).where(_media.c.status == STATUS_REMOVED)
        for rows in self._pages(removed, _media.c.md5, page):
            yield [r.md5 for r in rows]

    def by_md5_many(self, md5s: Sequence[str]) -> dict[str, MediaRow]:
        """The media rows of these md5s that exist (queried in batches)."""
        if self._points is not None and self._points.sqlite:
            try:
                return self._points.by_md5_many(md5s)
            except self._points.error as exc:
                raise CatalogError(f"catalog {self._where}: read failed: {exc}") from exc
        with self._read() as conn:
            return _rows_in(conn, md5s)

    def _upsert_urls(
        self, conn: Connection, entries: Sequence[tuple[str, UrlInfo]], now: datetime
    ) -> None:
        """Map each URL to its md5: insert new URLs, re-point and refresh known ones.

        A URL re-pointed to other content leaves a ``moved`` row in ``url_history``.
        """
        keys = sorted({info.key for _, info in entries})  # one lock order for every writer
        found: dict[str, Any] = {}
        if len(keys) == 1:  # the common single URL: no IN list to expand and compile
            row = conn.execute(_URL_ROW, {"url_key": keys[0]}).first()
            found = {keys[0]: row} if row else {}
            keys = []
        for start in range(0, len(keys), IN_BATCH):
            stmt = select(*_URL_COLS).where(_urls.c.url_key.in_(keys[start : start + IN_BATCH]))
            found.update((r.url_key, r) for r in conn.execute(stmt))
        inserts: dict[str, dict[str, Any]] = {}
        moved: list[dict[str, Any]] = []
        for md5, info in entries:
            if info.key in inserts:  # the same URL twice in one batch: the last one wins
                inserts[info.key].update(_url_update(md5, info, None))
                continue
            existing = found.get(info.key)
            if existing is None:
                inserts[info.key] = {
                    "url": info.url,
                    "url_key": info.key,
                    "url_md5": info.url_md5,
                    "source": info.source,
                    "md5": md5,
                    "first_seen_at": now,
                    "last_fetched_at": info.fetched_at,
                    "etag": info.etag,
                    "last_modified": info.last_modified,
                    **_identity_values(info),
                }
                continue
            if existing.md5 != md5:
                moved.append(
                    {
                        "url_key": info.key,
                        "url": existing.url or info.url,
                        "md5": existing.md5,
                        "event": "moved",
                        "at": now,
                    }
                )
            values = _url_update(md5, info, existing.url)
            conn.execute(update(_urls).where(_urls.c.id == existing.id).values(**values))
        if moved:
            insert_rows(conn, _history, moved)
        if inserts:
            insert_rows(conn, _urls, list(inserts.values()))

    def touch_url(self, url: str, fetched_at: datetime) -> None:
        """Record a successful revalidation (HTTP 304) of ``url``."""
        stmt = update(_urls).where(_urls.c.url_key == url_key(url))
        self._transact(lambda conn: conn.execute(stmt.values(last_fetched_at=fetched_at)))

    # --- store moves (migrate-store) ---------------------------------------------------------
    @property
    def where(self) -> str:
        """The catalog's file or URL (without a password), for messages."""
        return self._where

    def store_info(self) -> dict[str, str]:
        """The store's named values (``store_id``, ``blob_url``)."""
        with self._read() as conn:
            return {r.name: r.value for r in conn.execute(select(_info.c.name, _info.c.value))}

    def set_store_info(self, name: str, value: str) -> None:
        """Set one named value of the store."""

        self._transact(lambda conn: self._set_info(conn, name, value))

    @staticmethod
    def _set_info(conn: Connection, name: str, value: str) -> None:
        _set_row(conn, _info.c.name, name, {"value": value})

    def some_live_rows(self, count: int) -> list[MediaRow]:
        """Up to ``count`` rows of stored content (ok, missing, corrupt or broken)."""
        stmt = (
            select(*MEDIA_COLS)
            .where(_media.c.status != STATUS_REMOVED)
            .order_by(_media.c.md5)
            .limit(count)
        )
        with self._read() as conn:
            return [row_of(r) for r in conn.execute(stmt)]

    def open_moves(self, blob_url: str) -> list[MoveRow]:
        """Unfinished moves from or to ``blob_url`` (a canonical blob URL)."""
        stmt = (
            select(_moves.c.id, _moves.c.source, _moves.c.target)
            .where(
                _moves.c.finished_at.is_(None),
                or_(_moves.c.source == blob_url, _moves.c.target == blob_url),
            )
            .order_by(_moves.c.id)
        )
        with self._read() as conn:
            return [MoveRow(*r) for r in conn.execute(stmt)]

    def start_move(self, source: str, target: str, now: datetime) -> MoveRow:
        """The unfinished move from ``source`` to ``target``, started now if there is none.

        Raises:
            InvalidInputError: ``source`` is being moved somewhere else already.
        """

        def body(conn: Connection) -> MoveRow:
            stmt = select(_moves.c.id, _moves.c.source, _moves.c.target).where(
                _moves.c.finished_at.is_(None), _moves.c.source == source
            )
            for row in conn.execute(stmt):
                if row.target != target:
                    raise InvalidInputError(
                        f"{source} is being moved to {row.target} already: finish that move "
                        "first (run migrate-store with that target)"
                    )
                return MoveRow(*row)
            values = {"source": source, "target": target, "started_at": now}
            key = conn.execute(insert(_moves).values(**values)).inserted_primary_key
            assert key is not None
            new_id = key[0]
            return MoveRow(int(new_id), source, target)

        return self._transact(body)

    def unmoved(self, move: int, page: int = 500) -> Iterator[list[MediaRow]]:
        """Live rows (ok) whose bytes the move has not copied yet, a page at a time."""
        copied = select(_moved.c.md5).where(_moved.c.move == move, _moved.c.md5 == _media.c.md5)
        rows = select(*MEDIA_COLS).where(_media.c.status == STATUS_OK, ~copied.exists())
        for found in self._pages(rows, _media.c.md5, page):
            yield [row_of(r) for r in found]

    def moved(self, move: int, page: int = 500) -> Iterator[list[str]]:
        """Md5s the move has copied, a page at a time."""
        copied = select(_moved.c.md5).where(_moved.c.move == move)
        for rows in self._pages(copied, _moved.c.md5, page):
            yield [r.md5 for r in rows]

    def count_moved(self, move: int) -> int:
        """How many md5s the move has copied."""
        stmt = select(func.count()).select_from(_moved).where(_moved.c.move == move)
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def record_moved(self, writer: str, move: int, md5s: Sequence[str], now: datetime) -> None:
        """Record that these md5s' bytes are at the move's target; drop the writer's intents.

        Raises:
            IntentLostError: an intent was reaped meanwhile (nothing is recorded).
        """
        unique = sorted(set(md5s))
        if not unique:
            return

        def body(conn: Connection) -> None:
            if claims.release(conn, writer, unique) < len(unique):
                raise IntentLostError("this writer's intents expired; the copies were not recorded")
            known = select(_moved.c.md5).where(_moved.c.move == move, _moved.c.md5.in_(unique))
            done = set(conn.execute(known).scalars())
            new = [{"move": move, "md5": m, "copied_at": now} for m in unique if m not in done]
            if new:
                conn.execute(insert(_moved), new)

        self._transact(body)

    def finish_move(self, move: MoveRow, now: datetime) -> None:
        """Record a move finished and its target as where the files are, in one commit."""

        def body(conn: Connection) -> None:
            conn.execute(update(_moves).where(_moves.c.id == move.id).values(finished_at=now))
            self._set_info(conn, "blob_url", move.target)

        self._transact(body)

    def finished_move(self, source: str, target: str) -> MoveRow | None:
        """The last finished move from ``source`` to ``target``, if any."""
        stmt = (
            select(_moves.c.id, _moves.c.source, _moves.c.target)
            .where(
                _moves.c.finished_at.is_not(None),
                _moves.c.source == source,
                _moves.c.target == target,
            )
            .order_by(_moves.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            found = conn.execute(stmt).first()
        return None if found is None else MoveRow(*found)

    # --- reports -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Raw figures for :class:`~mediastore.records.StoreStats`: the counters, summed.

        A few dozen counter rows and one indexed probe, whatever the catalog's size; on
        SQLite through the point-read connections (the engine's set-up would cost more
        than both statements).
        """
        self.flush_urls()
        if self._points is not None:
            try:
                sums, oldest = self._points.stats()
            except self._points.error as exc:
                raise CatalogError(f"catalog {self._where}: read failed: {exc}") from exc
            return {"counters": sums, "oldest": oldest}
        with self._read(snapshot=True) as conn:
            counters = counter_sums(conn)
            return {"counters": counters, "oldest": conn.execute(OLDEST_VERIFIED).scalar()}

    def recount(self) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
        """Check the counters (and each row's ``url_count``) against the rows; repair them.

        One write transaction, in which no other writer changes a row: SQLite's write lock,
        or on PostgreSQL a SHARE lock on both tables (writers wait, readers do not). The
        ``dedup`` history is not recounted: the rows do not hold it.

        Returns:
            For each counter that was wrong: (counted from the rows, what it said).
        """
        return self._transact(recount)

    # --- listing and MD5 prefixes (read-only: ls, export, prefixes in the CLI) ------------
    def md5s_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Live md5s starting with ``prefix`` (lowercase hex), at most ``limit``, in order.

        A range scan of the primary key (``md5 >= prefix AND md5 < prefix || 'g'``: every
        hex digit sorts below ``g``), so it costs the same at any catalog size.
        """
        stmt = (
            select(_media.c.md5)
            .where(
                _media.c.md5 >= prefix,
                _media.c.md5 < prefix + "g",
                _media.c.status != STATUS_REMOVED,
            )
            .order_by(_media.c.md5)
            .limit(limit)
        )
        with self._read() as conn:
            return list(conn.execute(stmt).scalars())

    def count_to_verify(self, *, verified_before: datetime | None = None) -> int:
        """How many live files :meth:`iter_md5s` would list (for a progress bar's total).

        An indexed COUNT (status, and ``last_verified_at`` when a period is given).
        """
        stmt = select(func.count()).where(_media.c.status != STATUS_REMOVED)
        if verified_before is not None:
            stmt = stmt.where(
                or_(
                    _media.c.last_verified_at.is_(None), _media.c.last_verified_at < verified_before
                )
            )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def list_media(
        self,
        *,
        media_type: str | None = None,
        status: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        url_contains: str | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        shape: str | None = None,
        animated: bool | None = None,
        ref: str | None = None,
        unreferenced: bool = False,
        after: str = "",
        page: int = 500,
    ) -> Iterator[list[tuple[MediaRow, MediaMetadata | None]]]:
        """Live media rows meeting every condition given, with their metadata, a page at a
        time, in md5 order.

        Keyset pagination on the primary key: each page is one short read, so a listing of
        any length streams and never holds a transaction open. ``url_contains`` is a
        ``LIKE '%text%'`` on the URL table (escaped), which reads every URL row. A metadata
        condition leaves out rows whose value is unknown. ``shape`` compares the displayed
        size (else the stored size): ``portrait``, ``landscape`` or ``square``. ``after``
        starts the listing after that md5 (a cursor: the last md5 of a previous page).
        """
        self.flush_urls()
        conditions = [_media.c.status == status if status else _media.c.status != STATUS_REMOVED]
        if media_type is not None:
            conditions.append(_media.c.media_type == media_type)
        if min_size is not None:
            conditions.append(_media.c.size >= min_size)
        if max_size is not None:
            conditions.append(_media.c.size <= max_size)
        if since is not None:
            conditions.append(_media.c.created_at >= since)
        if before is not None:
            conditions.append(_media.c.created_at < before)
        if min_duration is not None:
            conditions.append(_media.c.duration >= min_duration)
        if max_duration is not None:
            conditions.append(_media.c.duration <= max_duration)
        if animated is not None:
            conditions.append(_media.c.animated.is_(animated))
        if shape is not None:
            wide = func.coalesce(_media.c.display_width, _media.c.width)
            tall = func.coalesce(_media.c.display_height, _media.c.height)
            compare = {"portrait": tall > wide, "landscape": wide > tall, "square": wide == tall}
            conditions.append(compare[shape])
        if ref is not None:
            conditions.append(_media.c.md5.in_(references.md5s_of_key(ref)))
        if unreferenced:
            conditions.append(_media.c.unreferenced_since.is_not(None))
        if url_contains is not None:
            conditions.append(
                select(_urls.c.id)
                .where(
                    _urls.c.md5 == _media.c.md5, _urls.c.url.contains(url_contains, autoescape=True)
                )
                .exists()
            )
        last = after
        width = len(MEDIA_COLS)
        while True:
            stmt = select(*MEDIA_COLS, *METADATA_COLS[2:]).where(_media.c.md5 > last, *conditions)
            with self._read() as conn:
                found = conn.execute(stmt.order_by(_media.c.md5).limit(page)).all()
            rows = [(MediaRow(*r[:width]), metadata_of((r[6], r[7], *r[width:]))) for r in found]
            if not rows:
                return
            yield rows
            if len(rows) < page:
                return
            last = rows[-1][0].md5

    # --- metadata ------------------------------------------------------------------------
    def metadata(self, md5: str) -> MediaMetadata | None:
        """What the row of ``md5`` records of its content (None: never read, or no row)."""
        with self._read() as conn:
            found = conn.execute(select(*METADATA_COLS).where(_media.c.md5 == md5)).first()
        return None if found is None else metadata_of(tuple(found))

    def unprobed(self, after: str, limit: int) -> list[MediaRow]:
        """``ok`` rows whose metadata was never read, in md5 order after ``after``."""
        stmt = (
            select(*MEDIA_COLS)
            .where(
                _media.c.md5 > after,
                _media.c.status == STATUS_OK,
                _media.c.metadata_read_at.is_(None),
            )
            .order_by(_media.c.md5)
            .limit(limit)
        )
        with self._read() as conn:
            return [row_of(r) for r in conn.execute(stmt)]

    def count_unprobed(self) -> int:
        """``ok`` rows whose metadata was never read."""
        stmt = select(func.count()).where(
            _media.c.status == STATUS_OK, _media.c.metadata_read_at.is_(None)
        )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def record_metadata(
        self, found: Sequence[tuple[str, MediaMetadata | None]], now: datetime
    ) -> int:
        """Record what was read of each md5's content (None: unreadable), in one transaction.

        Only rows still unread change (a concurrent probe or a re-add got there first
        otherwise); a video's width and height come from its video track. Returns the rows
        changed.
        """
        if not found:
            return 0
        columns = [*METADATA_COLUMNS, "metadata_read_at"]
        stmt = (
            update(_media)
            .where(_media.c.md5 == bindparam("b_md5"), _media.c.metadata_read_at.is_(None))
            .values(
                {name: bindparam(f"b_{name}") for name in columns}
                | {
                    "width": func.coalesce(_media.c.width, bindparam("b_width", type_=Integer)),
                    "height": func.coalesce(_media.c.height, bindparam("b_height", type_=Integer)),
                }
            )
        )
        params = []
        for md5, meta in found:
            values = metadata_values(meta, now)
            params.append(
                {f"b_{name}": values[name] for name in columns}
                | {
                    "b_md5": md5,
                    "b_width": None if meta is None else meta.width,
                    "b_height": None if meta is None else meta.height,
                }
            )

        def body(conn: Connection) -> int:
            return int(conn.execute(stmt, params).rowcount)

        return self._transact(body)

    def content_stats(self) -> tuple[float, int, int]:
        """Seconds of every live video, pages of every live PDF (where known), and the ``ok``
        rows whose metadata was never read: one pass over the media rows."""
        live = _media.c.status != STATUS_REMOVED
        unread = _media.c.metadata_read_at.is_(None) & (_media.c.status == STATUS_OK)
        stmt = select(
            func.sum(case((_media.c.media_type == "video", _media.c.duration), else_=None)),
            func.sum(_media.c.pages),
            func.sum(case((unread, 1), else_=0)),
        ).where(live)
        with self._read() as conn:
            seconds, pages, unprobed = conn.execute(stmt).one()
        return float(seconds or 0), int(pages or 0), int(unprobed or 0)


def _set_row(conn: Connection, key: Any, value: str, values: dict[str, Any]) -> None:
    """Update the row whose ``key`` column is ``value``, or insert it, in the caller's write
    transaction (on PostgreSQL a concurrent insert of the same key is a unique violation,
    and the transaction runs again)."""
    table = key.table
    done = conn.execute(update(table).where(key == value).values(**values))
    if not done.rowcount:
        conn.execute(insert(table).values({key.name: value, **values}))


#: What an identity rule says of a URL row: (identity, variant, rank, expiry).
UrlIdentity = tuple[str | None, str | None, int | None, datetime | None]

_SET_IDENTITY = (
    update(_urls)
    .where(_urls.c.id == bindparam("b_id"))
    .values(
        identity=bindparam("identity"),
        variant=bindparam("variant"),
        variant_rank=bindparam("variant_rank"),
        expires_at=bindparam("expires_at"),
    )
)

#: A URL found by identity, recorded unless the URL is known (a download of it says more
#: than an identity) or its content is no longer ``ok`` (removed meanwhile, say).
_ATTACH_URL = _urls.insert().from_select(
    [
        "url",
        "url_key",
        "url_md5",
        "source",
        "md5",
        "first_seen_at",
        "identity",
        "variant",
        "variant_rank",
        "expires_at",
    ],
    select(
        bindparam("b_url", type_=_urls.c.url.type),
        bindparam("b_url_key", type_=_urls.c.url_key.type),
        bindparam("b_url_md5", type_=_urls.c.url_md5.type),
        literal("url", _urls.c.source.type),
        _media.c.md5,
        bindparam("b_now", type_=UTCDateTime()),
        bindparam("b_identity", type_=_urls.c.identity.type),
        bindparam("b_variant", type_=_urls.c.variant.type),
        bindparam("b_rank", type_=_urls.c.variant_rank.type),
        bindparam("b_expires_at", type_=UTCDateTime()),
    ).where(
        _media.c.md5 == bindparam("b_md5"),
        _media.c.status == STATUS_OK,
        ~select(_urls.c.id).where(_urls.c.url_key == bindparam("b_url_key")).exists(),
    ),
)


def _forget_urls(conn: Connection, md5s: Sequence[str], now: datetime) -> None:
    """Delete the URLs of content being removed, each leaving a ``removed`` history row."""
    for start in range(0, len(md5s), IN_BATCH):
        chunk = list(md5s[start : start + IN_BATCH])
        conn.execute(
            insert(_history).from_select(
                ["url_key", "url", "md5", "event", "at"],
                select(
                    _urls.c.url_key,
                    _urls.c.url,
                    _urls.c.md5,
                    literal("removed"),
                    literal(now, UTCDateTime()),
                ).where(_urls.c.md5.in_(chunk)),
            )
        )
        conn.execute(delete(_urls).where(_urls.c.md5.in_(chunk)))


def _take_recorded_refs(
    conn: Connection,
    entries: Sequence[Recording],
    refused: Sequence[bool],
    urls: Sequence[tuple[str, UrlInfo]],
    now: datetime,
) -> None:
    """Take the references of recorded entries, and complete those that waited on one of
    the URLs just recorded. The writer's intents held the files until this transaction,
    so a row a collection removed since the claim is ``ok`` again (``revive``)."""
    takes = [
        (take, e.media.md5, next((u.url for u in e.urls if u.url is not None), None))
        for e, no in zip(entries, refused, strict=True)
        if not no
        for take in e.refs
    ]
    if takes:
        references.take(conn, takes, now, revive=True)
    recorded = {info.key: md5 for md5, info in urls if info.url is not None}
    if recorded:
        references.fill_pending(conn, recorded)


def _identity_values(info: UrlInfo) -> dict[str, Any]:
    return {
        "identity": info.identity,
        "variant": info.variant,
        "variant_rank": info.rank,
        "expires_at": info.expires_at,
    }


def _url_update(md5: str, info: UrlInfo, current_url: str | None) -> dict[str, Any]:
    """Column values that record ``info`` on an existing URL row."""
    values: dict[str, Any] = {"md5": md5}
    if info.identity is not None:  # the rules of this store say what the URL is
        values.update(_identity_values(info))
    if current_url is None and info.url is not None:
        values["url"] = info.url  # a legacy row learns its URL
    if info.fetched_at is not None:  # a download: its validators replace the old ones
        values.update(
            last_fetched_at=info.fetched_at, etag=info.etag, last_modified=info.last_modified
        )
    return values


def check_same_content(existing: MediaRow, new: NewMedia) -> None:
    if existing.sha256 != new.sha256 or existing.size != new.size:
        raise HashCollisionError(
            f"md5 {new.md5} is stored with sha256 {existing.sha256} ({existing.size} bytes) but "
            f"new content has sha256 {new.sha256} ({new.size} bytes): MD5 collision, refused"
        )


def make_url_safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
