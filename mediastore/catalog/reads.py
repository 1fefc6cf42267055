"""The hot reads (point lookups by MD5 or URL, the stats) on plain DBAPI connections, and the
statements they share with the generic path."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    bindparam,
    func,
    select,
)

from ..records import STATUS_OK, STATUS_REMOVED
from .engine import IN_BATCH, is_sqlite, open_sqlite
from .models import media as _media
from .models import media_urls as _urls
from .models import stats_counters as _counters
from .refs import media_for_stmt
from .rows import MEDIA_COLS, MediaRow, raw_row, utc

# Statements built once; SQLAlchemy caches their compiled form.
BY_MD5 = select(*MEDIA_COLS).where(_media.c.md5 == bindparam("md5"))


BY_URL = (
    select(*MEDIA_COLS)
    .join_from(_urls, _media, _urls.c.md5 == _media.c.md5)
    .where(_urls.c.url_key == bindparam("url_key"))
)

# A URL of the same identity and variant whose content is stored; variant None is its own
# statement (IS NULL), so that each is one indexed read on (identity, variant).
BY_IDENTITY = (
    select(*MEDIA_COLS)
    .join_from(_urls, _media, _urls.c.md5 == _media.c.md5)
    .where(
        _urls.c.identity == bindparam("identity"),
        _urls.c.variant == bindparam("variant"),
        _media.c.status == STATUS_OK,
    )
    .limit(1)
)
BY_PLAIN_IDENTITY = (
    select(*MEDIA_COLS)
    .join_from(_urls, _media, _urls.c.md5 == _media.c.md5)
    .where(
        _urls.c.identity == bindparam("identity"),
        _urls.c.variant.is_(None),
        _media.c.status == STATUS_OK,
    )
    .limit(1)
)

#: the live files a reference key holds, in its order
MEDIA_FOR = media_for_stmt(MEDIA_COLS)

COUNTER_SUMS = select(
    _counters.c.name, func.sum(_counters.c.count), func.sum(_counters.c.bytes)
).group_by(_counters.c.name)


OLDEST_VERIFIED = (
    select(_media.c.last_verified_at)
    .where(_media.c.last_verified_at.is_not(None), _media.c.status != STATUS_REMOVED)
    .order_by(_media.c.last_verified_at)
    .limit(1)
)


class PointReads:
    """The hot reads (point lookups, stats) on plain DBAPI connections.

    The SQL is compiled once from the same Core statements the generic path runs; executing
    it on an idle connection of a small private pool skips the engine's checkout, events,
    pre-ping and result machinery, which cost several times the query itself. SQLite's
    statement cache keeps the statements prepared; psycopg prepares a statement on the
    server once a connection has run it a few times. The pool grows to the peak number of
    concurrent lookups, no further; a connection that failed is closed, not reused.
    """

    def __init__(self, engine: Engine, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self.sqlite = is_sqlite(engine)
        self.error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sql: dict[str, str] = {}
        # name -> (parameter names in SQLite's order, the values a statement fixes itself)
        self._binds: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for name, stmt in (
            ("md5", BY_MD5),
            ("url_key", BY_URL),
            ("identity", BY_IDENTITY),
            ("plain_identity", BY_PLAIN_IDENTITY),
            ("ref", MEDIA_FOR),
        ):
            compiled = stmt.compile(dialect=engine.dialect)
            self.sql[name] = str(compiled)
            self._binds[name] = (list(compiled.positiontup or ()), dict(compiled.params))
        # statements without parameters: their constants are written into the SQL
        for name, stmt in (("counters", COUNTER_SUMS), ("oldest", OLDEST_VERIFIED)):
            compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
            self.sql[name] = str(compiled)

    def one(self, name: str, value: str) -> MediaRow | None:
        """The row of the statement ``name`` whose one parameter (named ``name``) is ``value``."""
        return self._first(name, (value,) if self.sqlite else {name: value})

    def by_identity(self, identity: str, variant: str | None) -> MediaRow | None:
        """The first stored row a URL of this identity and variant names."""
        if variant is None:
            return self.first("plain_identity", {"identity": identity})
        return self.first("identity", {"identity": identity, "variant": variant})

    def first(self, name: str, params: dict[str, Any]) -> MediaRow | None:
        """The first row of the statement ``name`` with these parameters (the others it
        fixes itself: a status, a limit)."""
        order, fixed = self._binds[name]
        if self.sqlite:
            return self._first(name, tuple(params[k] if k in params else fixed[k] for k in order))
        return self._first(name, fixed | params)

    def _first(self, name: str, params: tuple[str, ...] | dict[str, str]) -> MediaRow | None:
        try:  # self._cursor(), inline: this is the path of every lookup
            cursor = self._idle.get_nowait()
        except queue.Empty:
            cursor = self._connect().cursor()
        try:
            row = cursor.execute(self.sql[name], params).fetchone()
        except BaseException:
            cursor.connection.close()
            raise
        self._idle.put(cursor)
        return None if row is None else raw_row(row)

    def by_md5_many(self, md5s: Sequence[str]) -> dict[str, MediaRow]:
        """Rows of several md5s in one statement (SQLite): one round trip, one GIL release."""
        base = self.sql["md5"]
        assert base.endswith("media.md5 = ?"), base
        found: dict[str, MediaRow] = {}
        for start in range(0, len(md5s), IN_BATCH):
            batch = list(md5s[start : start + IN_BATCH])
            sql = base[: -len("= ?")] + f"IN ({','.join('?' * len(batch))})"
            for row in self._run(sql, batch):
                found[row[0]] = raw_row(row)
        return found

    def media_for(self, ref: str) -> list[MediaRow]:
        """The live files a reference key holds, in its order."""
        order, fixed = self._binds["ref"]
        given = fixed | {"ref": ref}
        params = tuple(given[key] for key in order) if self.sqlite else given
        return [raw_row(row) for row in self._run(self.sql["ref"], params)]

    def stats(self) -> tuple[dict[str, tuple[int, int]], datetime | None]:
        """The counters summed, and the oldest verification time."""
        sums = {name: (int(n), int(b)) for name, n, b in self._run(self.sql["counters"], ())}
        oldest = self._run(self.sql["oldest"], ())
        return sums, (utc(oldest[0][0]) if oldest else None)

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            rows: list[tuple[Any, ...]] = cursor.execute(sql, params).fetchall()
        except BaseException:
            cursor.connection.close()
            raise
        self._idle.put(cursor)
        return rows

    def _cursor(self) -> Any:
        """An idle connection's cursor (kept with it: one object fewer per lookup)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._connect().cursor()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().connection.close()
            except queue.Empty:
                return


def point_reads(
    engine: Engine, path: Path | None, busy_timeout: float, *, read_only: bool
) -> PointReads | None:
    """The fast read path for SQLite files and PostgreSQL (psycopg), else None."""
    if path is not None:
        return PointReads(engine, lambda: open_sqlite(path, busy_timeout, read_only=read_only))
    if engine.dialect.name != "postgresql":
        return None
    cargs, cparams = engine.dialect.create_connect_args(engine.url)

    def connect() -> Any:
        # autocommit: each lookup is its own snapshot, and no transaction stays open idle
        conn = engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
        conn.autocommit = True
        return conn

    return PointReads(engine, connect)
