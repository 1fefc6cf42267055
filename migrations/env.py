"""Alembic environment for the mediastore catalog.

The database is, in order: a connection passed by mediastore itself
(``config.attributes["connection"]``), ``sqlalchemy.url`` set on the config, the
``MEDIASTORE_DB_URL`` environment variable, or ``<MEDIASTORE_ROOT or cache>/catalog.sqlite3``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mediastore.catalog.engine import WRITE, foreign_keys_off, make_engine
from mediastore.catalog.models import metadata
from mediastore.config import DEFAULT_BUSY_TIMEOUT, DEFAULT_ROOT, default_db_url

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _db_url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("MEDIASTORE_DB_URL")
        or default_db_url(os.environ.get("MEDIASTORE_ROOT") or DEFAULT_ROOT)
    )


#: Advisory lock key held while migrating a PostgreSQL catalog (any constant will do).
SCHEMA_LOCK = 0x6D6564696173  # "medias"


def _configure(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Hosts that open an empty catalog at once would all create the schema: the first
        # migrates, the others wait here and then find the catalog at head (the revision is
        # read after the lock). SQLite's write lock (BEGIN IMMEDIATE) does the same there.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through batch "move and copy"
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_db_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_db_url(), busy_timeout=DEFAULT_BUSY_TIMEOUT)
    try:
        with (
            engine.connect() as conn,
            foreign_keys_off(conn),
            conn.execution_options(**WRITE).begin(),
        ):
            _configure(conn)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
