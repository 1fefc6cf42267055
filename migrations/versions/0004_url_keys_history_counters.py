"""URL keys by SHA-256, URL history, and counters behind stats()

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

What running the catalog on PostgreSQL from many hosts needs:

- ``media_urls.url_key``: the lookup key of a URL, the hex SHA-256 of its UTF-8 bytes (or
  ``md5:<url_md5>`` for a legacy row whose URL is not known yet), unique. The unique index
  on the raw ``url`` text goes: PostgreSQL's btree refuses entries over ~2.7 KB, and a key
  by MD5 would let two URLs built to collide share one row. ``url_md5`` stays, indexed but
  no longer unique, for the legacy cache's names.
- ``url_history``: what a URL pointed at before it was moved to other content or removed.
- ``media.url_count`` and ``stats_counters``: running totals kept by triggers in the very
  transaction that changes a row, so ``stats()`` reads a few rows at any catalog size. A
  counter is the sum of its shards; on PostgreSQL each backend writes its own shard
  (``pg_backend_pid() % 64``), so writers on many hosts do not queue on one row.

Every existing row is keyed and counted here. A later migration that rebuilds ``media``
or ``media_urls`` with SQLite's batch mode drops their triggers with the old table and must
create them again (a test checks that they exist at head).

Downgrading restores the unique indexes on ``url`` and ``url_md5``, which fails if the
catalog now holds URLs too long for them (PostgreSQL) or two URLs with one MD5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 64


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.add_column("media_urls", sa.Column("url_key", sa.String(length=64), nullable=True))
    _backfill_url_keys(bind, pg)
    with op.batch_alter_table("media_urls") as batch:
        batch.alter_column("url_key", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint(op.f("uq_media_urls_url"), type_="unique")
        batch.drop_constraint(op.f("uq_media_urls_url_md5"), type_="unique")
        batch.create_unique_constraint(op.f("uq_media_urls_url_key"), ["url_key"])
    op.create_index(op.f("ix_media_urls_url_md5"), "media_urls", ["url_md5"])
    op.create_table(
        "url_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "event IN ('moved', 'removed')", name=op.f("ck_url_history_event_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_url_history")),
    )
    op.create_index(op.f("ix_url_history_url_key"), "url_history", ["url_key"])
    op.add_column("media", sa.Column("url_count", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE media SET url_count = (SELECT count(*) FROM media_urls u WHERE u.md5 = media.md5)"
    )
    op.create_table(
        "stats_counters",
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "shard", name=op.f("pk_stats_counters")),
    )
    _count_existing_rows()
    for statement in PG_TRIGGERS if pg else SQLITE_TRIGGERS:
        op.execute(statement)


def _backfill_url_keys(bind: sa.Connection, pg: bool) -> None:
    legacy = "UPDATE media_urls SET url_key = 'md5:' || url_md5 WHERE url IS NULL"
    if pg:
        op.execute(
            "UPDATE media_urls SET url_key = encode(sha256(convert_to(url, 'UTF8')), 'hex') "
            "WHERE url IS NOT NULL"
        )
        op.execute(legacy)
        return
    driver = bind.connection.driver_connection
    assert driver is not None
    driver.create_function(
        "mediastore_sha256",
        1,
        lambda url: hashlib.sha256(url.encode("utf-8")).hexdigest(),
        deterministic=True,
    )
    op.execute("UPDATE media_urls SET url_key = mediastore_sha256(url) WHERE url IS NOT NULL")
    op.execute(legacy)


def _count_existing_rows() -> None:
    into = "INSERT INTO stats_counters (shard, name, count, bytes) "
    op.execute(
        into + "SELECT 0, 'media:' || media_type || ':' || status, count(*), "
        "coalesce(sum(size), 0) FROM media GROUP BY media_type, status"
    )
    op.execute(
        into + "SELECT 0, 'unverified', count(*), 0 FROM media "
        "WHERE last_verified_at IS NULL AND status <> 'removed'"
    )
    op.execute(into + "SELECT 0, 'urls', count(*), 0 FROM media_urls")
    shared = (
        "SELECT 0, '{name}', coalesce(sum(url_count - 1), 0), "
        "coalesce(sum((url_count - 1) * size), 0) FROM media WHERE url_count > 1"
    )
    op.execute(into + shared.format(name="shared_urls"))
    # history starts here: the content fetched again under other URLs is what is known of it
    op.execute(into + shared.format(name="dedup"))


def _sqlite_add(name: str, count: str, size: str, when: str = "") -> str:
    where = f" WHERE {when}" if when else " WHERE 1"
    return (
        f"INSERT INTO stats_counters (shard, name, count, bytes) SELECT 0, {name}, {count}, "
        f"{size}{where} ON CONFLICT (name, shard) DO UPDATE SET "
        "count = count + excluded.count, bytes = bytes + excluded.bytes;"
    )


def _media_name(row: str) -> str:
    return f"'media:' || {row}.media_type || ':' || {row}.status"


def _unverified(row: str) -> str:
    return f"({row}.last_verified_at IS NULL AND {row}.status <> 'removed')"


def _shared(row: str, *, size: bool) -> str:
    extra = f"max({row}.url_count - 1, 0)"
    return f"{extra} * {row}.size" if size else extra


SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER media_counts_insert AFTER INSERT ON media BEGIN
    {_sqlite_add(_media_name("NEW"), "1", "NEW.size")}
    {_sqlite_add("'unverified'", "1", "0", _unverified("NEW"))}
    {
        _sqlite_add(
            "'shared_urls'",
            _shared("NEW", size=False),
            _shared("NEW", size=True),
            "NEW.url_count > 1",
        )
    }
    END""",
    f"""CREATE TRIGGER media_counts_delete AFTER DELETE ON media BEGIN
    {_sqlite_add(_media_name("OLD"), "-1", "-OLD.size")}
    {_sqlite_add("'unverified'", "-1", "0", _unverified("OLD"))}
    {
        _sqlite_add(
            "'shared_urls'",
            "-" + _shared("OLD", size=False),
            "-" + _shared("OLD", size=True),
            "OLD.url_count > 1",
        )
    }
    END""",
    f"""CREATE TRIGGER media_counts_kind AFTER UPDATE OF media_type, status, size ON media
    WHEN OLD.media_type IS NOT NEW.media_type OR OLD.status IS NOT NEW.status
        OR OLD.size IS NOT NEW.size
    BEGIN
    {_sqlite_add(_media_name("OLD"), "-1", "-OLD.size")}
    {_sqlite_add(_media_name("NEW"), "1", "NEW.size")}
    END""",
    f"""CREATE TRIGGER media_counts_unverified AFTER UPDATE OF status, last_verified_at ON media
    WHEN {_unverified("OLD")} IS NOT {_unverified("NEW")}
    BEGIN
    {_sqlite_add("'unverified'", f"{_unverified('NEW')} - {_unverified('OLD')}", "0")}
    END""",
    f"""CREATE TRIGGER media_counts_shared AFTER UPDATE OF url_count, size ON media
    WHEN OLD.url_count IS NOT NEW.url_count OR OLD.size IS NOT NEW.size
    BEGIN
    {
        _sqlite_add(
            "'shared_urls'",
            f"{_shared('NEW', size=False)} - {_shared('OLD', size=False)}",
            f"{_shared('NEW', size=True)} - {_shared('OLD', size=True)}",
        )
    }
    END""",
    f"""CREATE TRIGGER media_urls_counts_insert AFTER INSERT ON media_urls BEGIN
    UPDATE media SET url_count = url_count + 1 WHERE md5 = NEW.md5;
    {_sqlite_add("'urls'", "1", "0")}
    END""",
    f"""CREATE TRIGGER media_urls_counts_delete AFTER DELETE ON media_urls BEGIN
    UPDATE media SET url_count = url_count - 1 WHERE md5 = OLD.md5;
    {_sqlite_add("'urls'", "-1", "0")}
    END""",
    """CREATE TRIGGER media_urls_counts_move AFTER UPDATE OF md5 ON media_urls
    WHEN OLD.md5 IS NOT NEW.md5
    BEGIN
    UPDATE media SET url_count = url_count - 1 WHERE md5 = OLD.md5;
    UPDATE media SET url_count = url_count + 1 WHERE md5 = NEW.md5;
    END""",
)

PG_TRIGGERS = (
    f"""CREATE FUNCTION mediastore_count(counter text, n bigint, b bigint) RETURNS void
    LANGUAGE sql AS $$
    INSERT INTO stats_counters (shard, name, count, bytes)
    VALUES (pg_backend_pid() % {SHARDS}, counter, n, b)
    ON CONFLICT (name, shard) DO UPDATE SET
        count = stats_counters.count + EXCLUDED.count,
        bytes = stats_counters.bytes + EXCLUDED.bytes
    $$""",
    """CREATE FUNCTION mediastore_media_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_unverified int := 0; new_unverified int := 0;
        old_shared bigint := 0; new_shared bigint := 0;
        old_bytes bigint := 0; new_bytes bigint := 0;
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            old_unverified := (OLD.last_verified_at IS NULL AND OLD.status <> 'removed')::int;
            old_shared := greatest(OLD.url_count - 1, 0);
            old_bytes := old_shared * OLD.size;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_unverified := (NEW.last_verified_at IS NULL AND NEW.status <> 'removed')::int;
            new_shared := greatest(NEW.url_count - 1, 0);
            new_bytes := new_shared * NEW.size;
        END IF;
        IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.media_type, OLD.status, OLD.size)
                IS DISTINCT FROM (NEW.media_type, NEW.status, NEW.size)) THEN
            PERFORM mediastore_count('media:' || OLD.media_type || ':' || OLD.status, -1,
                                     -OLD.size);
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (OLD.media_type, OLD.status, OLD.size)
                IS DISTINCT FROM (NEW.media_type, NEW.status, NEW.size)) THEN
            PERFORM mediastore_count('media:' || NEW.media_type || ':' || NEW.status, 1,
                                     NEW.size);
        END IF;
        IF new_unverified <> old_unverified THEN
            PERFORM mediastore_count('unverified', new_unverified - old_unverified, 0);
        END IF;
        IF new_shared <> old_shared OR new_bytes <> old_bytes THEN
            PERFORM mediastore_count('shared_urls', new_shared - old_shared,
                                     new_bytes - old_bytes);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER media_counts AFTER INSERT OR DELETE
    OR UPDATE OF media_type, status, size, url_count, last_verified_at ON media
    FOR EACH ROW EXECUTE FUNCTION mediastore_media_counts()""",
    """CREATE FUNCTION mediastore_url_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.md5 IS NOT DISTINCT FROM NEW.md5 THEN
            RETURN NULL;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            UPDATE media SET url_count = url_count - 1 WHERE md5 = OLD.md5;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            UPDATE media SET url_count = url_count + 1 WHERE md5 = NEW.md5;
        END IF;
        IF TG_OP = 'INSERT' THEN
            PERFORM mediastore_count('urls', 1, 0);
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM mediastore_count('urls', -1, 0);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER media_urls_counts AFTER INSERT OR DELETE OR UPDATE OF md5 ON media_urls
    FOR EACH ROW EXECUTE FUNCTION mediastore_url_counts()""",
)

_SQLITE_TRIGGER_NAMES = (
    "media_counts_insert", "media_counts_delete", "media_counts_kind", "media_counts_unverified",
    "media_counts_shared", "media_urls_counts_insert", "media_urls_counts_delete",
    "media_urls_counts_move",
)  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER media_urls_counts ON media_urls")
        op.execute("DROP TRIGGER media_counts ON media")
        op.execute("DROP FUNCTION mediastore_url_counts()")
        op.execute("DROP FUNCTION mediastore_media_counts()")
        op.execute("DROP FUNCTION mediastore_count(text, bigint, bigint)")
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("stats_counters")
    with op.batch_alter_table("media") as batch:
        batch.drop_column("url_count")
    op.drop_index(op.f("ix_url_history_url_key"), table_name="url_history")
    op.drop_table("url_history")
    op.drop_index(op.f("ix_media_urls_url_md5"), table_name="media_urls")
    with op.batch_alter_table("media_urls") as batch:
        batch.drop_constraint(op.f("uq_media_urls_url_key"), type_="unique")
        batch.create_unique_constraint(op.f("uq_media_urls_url"), ["url"])
        batch.create_unique_constraint(op.f("uq_media_urls_url_md5"), ["url_md5"])
        batch.drop_column("url_key")
