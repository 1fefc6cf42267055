"""SQLAlchemy 2 models of the catalog. Only Alembic migrations create or change these tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints, so Alembic's batch mode on SQLite can recreate them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use UTC-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Media(Base):
    """One stored file, keyed by the MD5 of its content."""

    __tablename__ = "media"

    md5: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str] = mapped_column(String(64))
    extension: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), server_default="ok", index=True)
    # set with status 'removed': rm forgot the content; the file goes once no intent holds it
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # URL rows pointing here, kept by a trigger: what stats() counts as saved by dedup (0004)
    url_count: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        CheckConstraint("size >= 0", name="size_nonnegative"),
        CheckConstraint(
            "status IN ('ok', 'missing', 'corrupt', 'broken', 'removed')", name="status_known"
        ),
        # stats(): count and sum(size) per type (removed content left out) from this index
        Index("ix_media_type_status_size", "media_type", "status", "size"),
        # verification schedules: "not verified since T"
        Index("ix_media_last_verified_at", "last_verified_at"),
    )


URL_SOURCES = ("url", "legacy")


class MediaUrl(Base):
    """A URL the content was fetched from or recorded with; many URLs may share one md5.

    A row imported from the legacy cache knows only the MD5 of its URL (the legacy file's
    name): ``url`` is NULL until a lookup by that URL fills it in (revision 0002).
    """

    __tablename__ = "media_urls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no index over the raw text: PostgreSQL's btree refuses entries over ~2.7 KB (revision 0004)
    url: Mapped[str | None] = mapped_column(Text)
    # the lookup key: hex SHA-256 of the URL (MD5 collisions can be made on purpose, so two
    # URLs never share a row through their MD5), or "md5:<url_md5>" for a legacy row whose
    # URL is not known yet
    url_key: Mapped[str] = mapped_column(String(64), unique=True)
    # lowercase hex MD5 of the URL: the legacy cache's file name for it
    url_md5: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16), server_default="url")
    md5: Mapped[str] = mapped_column(
        String(32), ForeignKey("media.md5", ondelete="CASCADE"), index=True
    )
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # HTTP validators from the last download, for conditional revalidation
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("source IN ('url', 'legacy')", name="source_known"),
        CheckConstraint("url IS NOT NULL OR source = 'legacy'", name="url_or_legacy"),
    )


class Writer(Base):
    """An open, writing store: its intents live as long as its heartbeat does (revision 0003).

    ``heartbeat`` is seconds since the epoch by the database's clock, never a host's, so that
    hosts whose clocks disagree still agree on which writers are alive.
    """

    __tablename__ = "writers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    heartbeat: Mapped[int] = mapped_column(BigInteger, index=True)


class Intent(Base):
    """A writer may be about to place, or rely on, the file of ``md5``: nothing removes it."""

    __tablename__ = "intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    writer: Mapped[str] = mapped_column(
        String(32), ForeignKey("writers.id", ondelete="CASCADE"), index=True
    )
    md5: Mapped[str] = mapped_column(String(32), index=True)


URL_EVENTS = ("moved", "removed")


class UrlHistory(Base):
    """What a URL pointed at before it was re-pointed to other content or removed (0004)."""

    __tablename__ = "url_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url_key: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str | None] = mapped_column(Text)
    md5: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("event IN ('moved', 'removed')", name="event_known"),)


class StatsCounter(Base):
    """Running totals behind ``stats()``, kept by triggers in the writing transaction (0004).

    Each row is one shard of one counter; a counter's value is the sum of its shards. On
    PostgreSQL a transaction writes the shard of its backend, so concurrent writers on many
    hosts do not queue on one hot row; SQLite has one writer at a time and uses shard 0.
    Names: ``media:<type>:<status>`` (rows, bytes), ``unverified`` (live rows never
    verified), ``urls`` (URL rows), ``shared_urls`` (URLs beyond the first of their content,
    and the bytes they did not store again), ``dedup`` (adds that found their content
    already stored, and its bytes; history, not recounted).
    """

    __tablename__ = "stats_counters"

    # name first: stats() sums the shards of each name in the primary key's order
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)


class StoreMove(Base):
    """A copy of the store's bytes from one blob store to another (``migrate-store``, 0005)."""

    __tablename__ = "store_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MovedBlob(Base):
    """The bytes of ``md5`` are at the move's target, hashed back right there."""

    __tablename__ = "moved_blobs"

    move: Mapped[int] = mapped_column(
        Integer, ForeignKey("store_moves.id", ondelete="CASCADE"), primary_key=True
    )
    md5: Mapped[str] = mapped_column(String(32), primary_key=True)
    copied_at: Mapped[datetime] = mapped_column(UTCDateTime())
