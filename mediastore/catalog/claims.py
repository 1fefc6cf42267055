"""Writers and their intents: the catalog side of the blob lifecycle (``docs/lifecycle.md``).

A *writer* is an open, writing store; it proves it is alive by a heartbeat taken from the
database's clock. An *intent* says "this writer may be about to place, or rely on, the file
of this md5". The rule every remover follows is checked here, inside the remover's own
transaction: a file whose md5 has an intent is not moved or deleted.

Every statement runs on a connection the caller has inside a transaction; which lock that
transaction holds (SQLite's write lock; on a server database, row locks) is what makes the
check and the act that follows it one step for every other writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, delete, func, insert, select, text, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from .engine import IN_BATCH, insert_rows
from .models import fetch_leases as _leases
from .models import intents as _intents
from .models import writers as _writers


class db_epoch(FunctionElement[int]):
    """Whole seconds since the epoch by the database server's clock."""

    type = BigInteger()
    inherit_cache = True


@compiles(db_epoch, "sqlite")
def _epoch_sqlite(element: db_epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(strftime('%s', 'now') AS INTEGER)"


@compiles(db_epoch)
def _epoch_default(element: db_epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS BIGINT)"


def add_writer(conn: Connection, label: str) -> str:
    """Register a new writer; returns its id."""
    writer = uuid.uuid4().hex
    conn.execute(insert(_writers).values(id=writer, label=label[:200], heartbeat=db_epoch()))
    return writer


def beat(conn: Connection, writer: str, label: str) -> bool:
    """Renew ``writer``'s heartbeat; False if it had been reaped (it is registered again).

    A reaped writer's intents are gone: its next commit notices (:func:`release` counts
    them) and fails rather than record a file that a remover may have taken meanwhile.
    """
    result = conn.execute(
        update(_writers).where(_writers.c.id == writer).values(heartbeat=db_epoch())
    )
    if result.rowcount:
        return True
    conn.execute(insert(_writers).values(id=writer, label=label[:200], heartbeat=db_epoch()))
    return False


def drop_writer(conn: Connection, writer: str) -> None:
    """Forget a writer and every intent it still holds (it is closing)."""
    conn.execute(delete(_intents).where(_intents.c.writer == writer))
    conn.execute(delete(_writers).where(_writers.c.id == writer))


def reap_writers(conn: Connection, lease_seconds: int) -> int:
    """Drop writers whose heartbeat is older than the lease, and their intents."""
    stale = select(_writers.c.id).where(_writers.c.heartbeat < db_epoch() - lease_seconds)
    conn.execute(delete(_intents).where(_intents.c.writer.in_(stale)))
    return conn.execute(delete(_writers).where(_writers.c.id.in_(stale))).rowcount


def hold(conn: Connection, writer: str, md5s: Sequence[str]) -> None:
    """Record an intent of ``writer`` on each md5."""
    if md5s:
        lock(conn, md5s, exclusive=False)
        insert_rows(conn, _intents, [{"writer": writer, "md5": m} for m in md5s])


def lock(conn: Connection, md5s: Sequence[str], *, exclusive: bool) -> None:
    """Lock these md5s until the transaction ends: shared for a claim, exclusive for a remover.

    SQLite's write lock already makes every write transaction run alone. PostgreSQL runs
    them side by side, so a remover's "no intent on this md5" could be read just before a
    claim commits one and the remover then delete a file the claimer relies on: advisory
    locks per md5 make the check and the act one step for claims on the same md5, and
    leave every other md5 free. Taken in one order (sorted keys) so that two lockers of
    several md5s cannot deadlock.
    """
    if conn.dialect.name != "postgresql" or not md5s:
        return
    keys = sorted({_lock_key(m) for m in md5s})
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(
        text(f"SELECT {fn}(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) s"),
        {"keys": keys},
    )


def _lock_key(md5: str) -> int:
    """A signed 64-bit advisory lock key from an md5 (a shared prefix only over-locks)."""
    return int(md5[:16], 16) - (1 << 63)


def release(conn: Connection, writer: str, md5s: Sequence[str]) -> int:
    """Drop ``writer``'s intents on these md5s; returns how many there were."""
    dropped = 0
    for start in range(0, len(md5s), IN_BATCH):
        chunk = list(md5s[start : start + IN_BATCH])
        stmt = delete(_intents).where(_intents.c.writer == writer, _intents.c.md5.in_(chunk))
        dropped += conn.execute(stmt).rowcount
    return dropped


def held(conn: Connection, md5s: Sequence[str]) -> set[str]:
    """The md5s among these that some writer holds an intent on.

    Locks them (see :func:`lock`) first: until the caller's transaction ends, no claim on
    them can commit, so an md5 found unheld stays unheld while the caller acts on its file.
    """
    lock(conn, md5s, exclusive=True)
    found: set[str] = set()
    for start in range(0, len(md5s), IN_BATCH):
        chunk = list(md5s[start : start + IN_BATCH])
        stmt = select(_intents.c.md5).where(_intents.c.md5.in_(chunk)).distinct()
        found.update(conn.execute(stmt).scalars())
    return found


def writer_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_writers)).scalar_one())


def take_lease(conn: Connection, key: str, token: str, seconds: int) -> bool:
    """Hold the lease ``key`` for ``seconds`` (by the database's clock) unless another
    holder's lease on it has not run out; True when it is held by ``token`` now."""
    held = conn.execute(select(_leases.c.until).where(_leases.c.key == key)).scalar()
    now = conn.execute(select(db_epoch())).scalar_one()
    if held is not None and held >= now:
        return False
    values = {"token": token, "until": now + seconds}
    if held is None:
        conn.execute(insert(_leases).values(key=key, **values))
    else:
        conn.execute(update(_leases).where(_leases.c.key == key).values(**values))
    return True


def drop_lease(conn: Connection, key: str, token: str) -> None:
    """End the lease ``key`` if ``token`` still holds it."""
    conn.execute(delete(_leases).where(_leases.c.key == key, _leases.c.token == token))


def lease_held(conn: Connection, key: str) -> bool:
    """Whether some holder's lease on ``key`` has not run out."""
    held = conn.execute(select(_leases.c.until).where(_leases.c.key == key)).scalar()
    return held is not None and held >= conn.execute(select(db_epoch())).scalar_one()
