"""The catalog's tables (SQLAlchemy Core). Only Alembic migrations create or change them.

Plain ``Table`` objects, not ORM classes: nothing maps rows to objects, and importing
``sqlalchemy.orm`` would add about 0.1 s to every process that opens a store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
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


metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: One stored file, keyed by the MD5 of its content.
media = Table(
    "media",
    metadata,
    Column("md5", String(32), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("media_type", String(16), nullable=False),
    Column("mime_type", String(64), nullable=False),
    Column("extension", String(8), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_verified_at", UTCDateTime()),
    Column("status", String(16), nullable=False, server_default="ok", index=True),
    # set with status 'removed': rm forgot the content; the file goes once no intent holds it
    Column("removed_at", UTCDateTime()),
    # URL rows pointing here, kept by a trigger: what stats() counts as saved by dedup (0004)
    Column("url_count", Integer, nullable=False, server_default="0"),
    # what the file says about its content, read in the ingest pass (0010); NULL: unknown
    Column("duration", Float, index=True),  # seconds (ls --min/--max-duration)
    Column("frames", Integer),
    Column("frame_rate", Float),
    Column("animated", Boolean, index=True),  # ls --animated / --still
    Column("rotation", SmallInteger),
    Column("display_width", Integer),
    Column("display_height", Integer),
    Column("pixel_aspect", String(16)),
    Column("orientation", SmallInteger),  # EXIF 1-8
    Column("video_codec", String(32)),
    Column("audio_codec", String(32)),
    Column("has_audio", Boolean),
    Column("bit_rate", BigInteger),
    Column("creation_time", UTCDateTime()),
    # EXIF DateTimeOriginal as ISO 8601 text: naive (the camera's local time) or with offset
    Column("capture_time", String(32)),
    Column("pages", Integer),
    Column("pdf_version", String(8)),
    Column("encrypted", Boolean),
    # when the metadata was read; NULL: stored before 0010, not probed yet
    Column("metadata_read_at", UTCDateTime()),
    # reference rows naming this content, kept in the transaction that changes one (0011)
    Column("ref_count", Integer, nullable=False, server_default="0"),
    # seconds (database clock) since the count fell to 0; NULL: referenced or never was
    Column("unreferenced_since", BigInteger),
    CheckConstraint("size >= 0", name="size_nonnegative"),
    CheckConstraint(
        "status IN ('ok', 'missing', 'corrupt', 'broken', 'removed')", name="status_known"
    ),
    # stats(): count and sum(size) per type (removed content left out) from this index
    Index("ix_media_type_status_size", "media_type", "status", "size"),
    # verification schedules: "not verified since T"
    Index("ix_media_last_verified_at", "last_verified_at"),
    # stats(): referenced files and bytes; gc --unreferenced: what lost its last reference
    Index("ix_media_ref_count", "ref_count", "status", "size"),
    Index("ix_media_unreferenced_since", "unreferenced_since", "status", "size"),
)

URL_SOURCES = ("url", "legacy")

#: A URL the content was fetched from or recorded with; many URLs may share one md5.
#: A row imported from the legacy cache knows only the MD5 of its URL (the legacy file's
#: name): ``url`` is NULL until a lookup by that URL fills it in (revision 0002).
media_urls = Table(
    "media_urls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # no index over the raw text: PostgreSQL's btree refuses entries over ~2.7 KB (0004)
    Column("url", Text),
    # the lookup key: hex SHA-256 of the URL (MD5 collisions can be made on purpose, so two
    # URLs never share a row through their MD5), or "md5:<url_md5>" for a legacy row whose
    # URL is not known yet
    Column("url_key", String(64), nullable=False, unique=True),
    # lowercase hex MD5 of the URL: the legacy cache's file name for it
    Column("url_md5", String(32), nullable=False, index=True),
    Column("source", String(16), nullable=False, server_default="url"),
    Column(
        "md5",
        String(32),
        ForeignKey("media.md5", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_fetched_at", UTCDateTime()),
    # HTTP validators from the last download, for conditional revalidation
    Column("etag", String(512)),
    Column("last_modified", String(64)),
    # URL identity (0007): the SHA-256 of the identity a rule gave the URL, its variant and
    # the variant's rank, and when the URL expires; all NULL where no rule matched
    Column("identity", String(64)),
    Column("variant", Text),
    Column("variant_rank", Integer),
    Column("expires_at", UTCDateTime()),
    # md5 in the index: a lookup by identity reads no URL row (revision 0009)
    Index("ix_media_urls_identity", "identity", "variant", "md5"),
    CheckConstraint("source IN ('url', 'legacy')", name="source_known"),
    CheckConstraint("url IS NOT NULL OR source = 'legacy'", name="url_or_legacy"),
)

#: An open, writing store: its intents live as long as its heartbeat does (revision 0003).
#: ``heartbeat`` is seconds since the epoch by the database's clock, never a host's, so that
#: hosts whose clocks disagree still agree on which writers are alive.
writers = Table(
    "writers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("heartbeat", BigInteger, nullable=False, index=True),
)

#: A writer may be about to place, or rely on, the file of ``md5``: nothing removes it.
intents = Table(
    "intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "writer",
        String(32),
        ForeignKey("writers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("md5", String(32), nullable=False, index=True),
)

URL_EVENTS = ("moved", "removed")

#: What a URL pointed at before it was re-pointed to other content or removed (0004).
url_history = Table(
    "url_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url_key", String(64), nullable=False, index=True),
    Column("url", Text),
    Column("md5", String(32), nullable=False),
    Column("event", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    CheckConstraint("event IN ('moved', 'removed')", name="event_known"),
)

#: Running totals behind ``stats()``, kept by triggers in the writing transaction (0004).
#:
#: Each row is one shard of one counter; a counter's value is the sum of its shards. On
#: PostgreSQL a transaction writes the shard of its backend, so concurrent writers on many
#: hosts do not queue on one hot row; SQLite has one writer at a time and uses shard 0.
#: Names: ``media:<type>:<status>`` (rows, bytes), ``unverified`` (live rows never
#: verified), ``urls`` (URL rows), ``shared_urls`` (URLs beyond the first of their content,
#: and the bytes they did not store again), ``dedup`` (adds that found their content
#: already stored, and its bytes; history, not recounted).
stats_counters = Table(
    "stats_counters",
    metadata,
    # name first: stats() sums the shards of each name in the primary key's order
    Column("name", String(48), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
)

#: A copy of the store's bytes from one blob store to another (``migrate-store``, 0005).
store_moves = Table(
    "store_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
)

#: The bytes of ``md5`` are at the move's target, hashed back right there.
moved_blobs = Table(
    "moved_blobs",
    metadata,
    Column("move", Integer, ForeignKey("store_moves.id", ondelete="CASCADE"), primary_key=True),
    Column("md5", String(32), primary_key=True),
    Column("copied_at", UTCDateTime(), nullable=False),
)

#: Named values of the whole store: ``store_id`` (also the blob store's marker) and
#: ``blob_url`` (where the files of this catalog live).
store_info = Table(
    "store_info",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: The last permanent download failure of a URL (revision 0008): 404/410, refused or corrupt
#: content; within the store's ``failure_ttl`` a fetch of it fails from memory.
url_failures = Table(
    "url_failures",
    metadata,
    Column("url_key", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("error", String(40), nullable=False),
    Column("status", Integer),
    Column("reason", Text, nullable=False),
    Column("failed_at", UTCDateTime(), nullable=False),
)

#: Hosts that asked for a pause (revision 0009: 429/503 with Retry-After) and until when, so
#: that a new run does not contact them before then either.
host_pauses = Table(
    "host_pauses",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("until", UTCDateTime(), nullable=False),
)

#: One download at a time of the bytes an asset's URLs name (revision 0009): the lease's
#: key, its holder's token, and until when it holds (seconds, by the database's clock).
fetch_leases = Table(
    "fetch_leases",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("token", String(32), nullable=False),
    Column("until", BigInteger, nullable=False),
)

#: A caller's key (``post:123``) on a stored file, with an optional position and role
#: (revision 0011). ``md5`` is NULL while the key names only a URL whose download failed:
#: the recording transaction that first stores the URL fills it in.
refs = Table(
    "refs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(512), nullable=False),
    Column("md5", String(32), ForeignKey("media.md5", ondelete="CASCADE"), index=True),
    Column("url", Text),
    Column("url_key", String(64), index=True),
    Column("position", Integer),
    Column("role", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    # media_for(ref): a range of this index; one row per key and file
    UniqueConstraint("ref", "md5"),
    CheckConstraint("md5 IS NOT NULL OR url_key IS NOT NULL", name="file_or_url"),
)

#: The similarity hashes of a stored image's first frame (revision 0012), one row per md5
#: once ``index`` has read it. ``pixel_hash`` NULL: the image did not decode (the row still
#: says it was read, so a rerun skips it). The perceptual hash is kept whole (signed 64-bit)
#: and cut into bands (``mediastore.similarity``), each indexed: a query within distance k
#: reads index point lookups (the band with the hash: covering), never the table.
image_hashes = Table(
    "image_hashes",
    metadata,
    Column("md5", String(32), ForeignKey("media.md5", ondelete="CASCADE"), primary_key=True),
    Column("pixel_hash", String(64), index=True),
    Column("phash", BigInteger),
    Column("band0", Integer),
    Column("band1", Integer),
    Column("band2", Integer),
    Column("hashed_at", UTCDateTime(), nullable=False),
    # each band with the whole hash: the candidates of a query are read from the indexes
    # alone and filtered by distance before any row is read
    Index("ix_image_hashes_band0", "band0", "phash"),
    Index("ix_image_hashes_band1", "band1", "phash"),
    Index("ix_image_hashes_band2", "band2", "phash"),
)
