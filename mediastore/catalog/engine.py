"""Engine creation: SQLite pragmas (WAL, busy timeout, foreign keys) and write transactions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..errors import InvalidInputError, StoreNotFoundError

#: Execution option that makes SQLite start the transaction with BEGIN IMMEDIATE, taking the
#: write lock up front: a reader that later writes could otherwise deadlock with another writer.
WRITE = {"mediastore_write": True}
POOL_SIZE = 16
#: Execution option for reads of several statements that must see one snapshot.
SNAPSHOT = {"mediastore_snapshot": True}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


#: The driver each supported database needs, and the extra that installs it.
DRIVERS = {"postgresql": ("psycopg", "postgres"), "sqlite": ("sqlite3", "")}
URL_EXAMPLES = "sqlite:///path/catalog.sqlite3 or postgresql+psycopg://user@host/db"


def parse_db_url(url: str) -> URL:
    """``url`` parsed, or an InvalidInputError naming what a catalog URL looks like."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"not a database URL: {url!r} (expected {URL_EXAMPLES})") from exc


def sqlite_path(url: str) -> Path | None:
    """File behind a SQLite URL, or None (another backend, or in memory)."""
    parsed = parse_db_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(
    url: str,
    *,
    busy_timeout: float,
    read_only: bool = False,
    create: bool = True,
    synchronous: str | None = None,
) -> Engine:
    """An engine for ``url``; for SQLite, with the pragmas that make sharing it safe.

    Args:
        read_only: Open a SQLite file read-only (see :func:`connect_read_only`).
        create: Create a missing SQLite file (and its directory); else refuse it.
        synchronous: SQLite's synchronous level for this engine's connections (default
            :data:`SYNCHRONOUS`; ``NORMAL`` only for writes a power cut may lose harmlessly).

    Raises:
        StoreNotFoundError: a SQLite file that does not exist, with ``create`` false.
    """
    path = sqlite_path(url)
    if path is None:
        return _server_engine(url)
    if not path.exists() and (read_only or not create):
        raise StoreNotFoundError(f"no catalog at {path}")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if read_only:
        extra["creator"] = lambda: connect_read_only(path, busy_timeout)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        **extra,
        # enough for fetch_many's workers: an overflow connection opened and closed per
        # checkout costs milliseconds, and its set-up can wait on other connections' locks
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        if not read_only:
            configure_sqlite(dbapi_conn, busy_timeout, synchronous or SYNCHRONOUS)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writes take the lock up front. A read of one statement needs no transaction
        # (SQLite gives each statement a consistent snapshot), which saves a round trip on
        # the hot lookups; reads of several statements ask for a snapshot.
        options = conn.get_execution_options()
        if options.get("mediastore_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif options.get("mediastore_snapshot"):
            conn.exec_driver_sql("BEGIN")

    return engine


def _server_engine(url: str) -> Engine:
    """An engine for a database server; a missing driver is one line naming the extra."""
    parsed = parse_db_url(url)
    backend = parsed.get_backend_name()
    if backend not in DRIVERS:
        raise InvalidInputError(
            f"unsupported catalog database {backend!r}: mediastore runs on SQLite and "
            f"PostgreSQL ({URL_EXAMPLES})"
        )
    if backend == "sqlite":  # sqlite_path found no file: the URL asks for memory
        raise InvalidInputError(
            f"catalog URL {url!r} is an in-memory SQLite database, which would be lost "
            "when the store closes: give a file (sqlite:///path/catalog.sqlite3)"
        )
    driver, extra = DRIVERS[backend]
    if parsed.get_driver_name() not in (driver, backend):
        raise InvalidInputError(
            f"catalog URL {parsed.render_as_string(hide_password=True)!r} names driver "
            f"{parsed.get_driver_name()!r}; mediastore uses {backend}+{driver}://"
        )
    try:
        return create_engine(parsed.set(drivername=f"{backend}+{driver}"), pool_pre_ping=True)
    except (ImportError, NoSuchModuleError) as exc:
        raise InvalidInputError(
            f"the {backend} driver ({driver}) is not installed: pip install 'mediastore[{extra}]'"
        ) from exc


def _another_apps(cur: sqlite3.Cursor) -> bool:
    """A database with tables but no schema version: not a catalog, so its journal mode is
    not ours to change (the schema check then refuses it, changing nothing)."""
    tables = {
        name for (name,) in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    return bool(tables) and "alembic_version" not in tables


def configure_sqlite(
    dbapi_conn: sqlite3.Connection, busy_timeout: float, synchronous: str | None = None
) -> None:
    """The pragmas every catalog connection gets."""
    # SQLAlchemy's begin event emits BEGIN itself (pysqlite's implicit transactions would
    # defer the write lock, and Python 3.11 has no Connection.autocommit).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # Asking for WAL when the file is already in WAL mode can still wait on a lock; the
    # mode is persistent, so only the first connection to a new catalog needs to set it.
    if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and not _another_apps(cur):
        cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    # FULL: a commit is on disk when it returns, so an add that returned survives a power
    # cut with its URLs (NORMAL could roll the last commits back). Grouped commits share one
    # WAL fsync, which is what pays for it.
    cur.execute(f"PRAGMA synchronous = {synchronous or SYNCHRONOUS}")
    cur.close()


#: The synchronous level of every catalog connection (tests check it is in force).
SYNCHRONOUS = "FULL"
#: Values bound in one ``IN (...)`` list (far below either database's parameter limit).
IN_BATCH = 500


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys); on SQLite, in one statement.

    An executemany steps its statement once per row, and SQLite's driver lets go of the GIL
    around every step. A thread that lets go of the GIL while others compute waits about a
    switch interval (5 ms) to get it back: with 4 busy threads a claim of 15 md5s took 54 ms
    instead of 1.3. So SQLite gets the rows as one JSON array that a single INSERT ... SELECT
    reads (the values bound as the column types would bind them); a server database, whose
    driver sends the rows in one round trip, an executemany.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), list(rows))
        return
    keys = list(rows[0])
    columns = [table.c[key] for key in keys]
    processors = [
        col.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for col in columns
    ]
    values = [
        [
            value if value is None or proc is None else proc(value)
            for proc, value in zip(processors, (row[k] for k in keys), strict=True)
        ]
        for row in rows
    ]
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(keys)))
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(key) for key in keys)
    sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT {picks} FROM json_each(:rows)"
    conn.execute(text(sql), {"rows": json.dumps(values)})


def connect_read_only(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to a catalog this user may not be able to write.

    ``mode=ro`` reads a WAL database while writers work, but needs its ``-shm`` file to
    exist or to be creatable. A store closed cleanly has none, and a user without write
    access to the directory cannot make one: then the file is opened ``immutable``, which
    needs neither shared memory nor locks. SQLite trusts such a file not to change, so a
    read that overlaps a write by the store's owner can fail or miss that write; a store
    nobody is writing reads exactly.
    """
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, timeout=busy_timeout, check_same_thread=False
        )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn = sqlite3.connect(
            f"{uri}?mode=ro&immutable=1",
            uri=True,
            timeout=busy_timeout,
            check_same_thread=False,
        )
    conn.isolation_level = None
    return conn


#: Bytes of the catalog file a plain connection maps into memory: a lookup then reads its
#: B-tree pages from the page cache in place, where the default copies each page it misses
#: in SQLite's 2 MB cache (a lookup on a catalog of 1,000,000 URLs misses several).
#: Writes still go through the WAL; mapping is coherent with other processes' commits.
READ_MMAP_SIZE = 1 << 30


def open_sqlite(path: Path, busy_timeout: float, *, read_only: bool = False) -> sqlite3.Connection:
    """A plain DBAPI connection to a catalog file, configured like the engine's, mapped."""
    if read_only:
        conn = connect_read_only(path, busy_timeout)
    else:
        conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
        configure_sqlite(conn, busy_timeout)
    conn.execute(f"PRAGMA mmap_size = {READ_MMAP_SIZE}")
    return conn


@contextmanager
def foreign_keys_off(conn: Connection) -> Iterator[None]:
    """Run a migration with SQLite's foreign keys off, then check they still hold.

    Alembic's batch mode rebuilds a table by copy, drop and rename; with foreign keys on,
    the drop would cascade. The pragma only works outside a transaction, so it is set on the
    driver connection before anything begins.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
        broken = driver.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken after migration: {broken[:5]}")
    finally:
        driver.execute("PRAGMA foreign_keys = ON")
