"""Where the Alembic migrations live, and the check that a catalog is at their head.

Alembic is imported only to migrate, or to explain a catalog that is not at head: importing
it (with Mako and its dialect modules) takes about 0.3 s, which every CLI command and every
download worker process would otherwise pay on opening a store that is already at head.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..errors import CatalogError, SchemaOutdatedError
from .engine import WRITE, foreign_keys_off

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

#: The head revision of the shipped migrations (a test checks it against Alembic's view).
SCHEMA_HEAD = "0012"
#: Alembic's table recording the revision a catalog is at.
VERSION_TABLE = "alembic_version"

SCHEMA_UPGRADE_HINT = "run `mediastore db upgrade` (or `alembic upgrade head` from the repo root)"


def migrations_dir() -> Path:
    """The Alembic migrations: inside an installed package (``mediastore/migrations``, copied
    there when it is built), else beside the package in a checkout (``migrations/``)."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "migrations"
    return shipped if shipped.is_dir() else package.parent / "migrations"


def alembic_config(db_url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations (and at ``db_url`` when given)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if db_url:
        cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


@functools.cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, every revision) of the migrations shipped with this mediastore.

    Read once per process: they cannot change under a running program, every store that
    opens would otherwise parse each migration script again, and a process that has since
    dropped its privileges (a read-only user's) may no longer be able to read them.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return frozenset(script.get_heads()), known


def head_revisions() -> set[str]:
    """The heads of the migrations shipped with this mediastore, as Alembic reads them."""
    return set(_revisions()[0])


def known_revisions() -> set[str]:
    """Every revision of the migrations shipped with this mediastore."""
    return set(_revisions()[1])


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def _one_line(engine: Engine, action: str) -> Iterator[None]:
    """A database failure as one :class:`CatalogError` naming the catalog.

    A file of garbage bytes or an unreachable server would otherwise surface as a driver's
    exception (and a traceback).
    """
    try:
        yield
    except SQLAlchemyError as exc:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise CatalogError(f"catalog {_where(engine)}: {action} failed: {first}") from exc


def current_revisions(engine: Engine) -> set[str]:
    """The revisions the catalog is at (empty for an empty database).

    Raises:
        CatalogError: the database cannot be read (not a database, unreachable).
    """
    with _one_line(engine, "reading the schema revision"), engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return set()
        return {row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` on ``engine``, under the write lock.

    Raises:
        CatalogError: the database failed, or is not a database.
        SchemaOutdatedError: the catalog is at a revision these migrations do not know.
    """
    from alembic import command
    from alembic.util import CommandError

    cfg = alembic_config()
    try:
        with (
            _one_line(engine, "upgrade"),
            engine.connect() as conn,
            foreign_keys_off(conn),
            conn.execution_options(**WRITE).begin(),
        ):
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except CommandError as exc:
        raise SchemaOutdatedError(
            f"catalog {_where(engine)}: upgrade failed: {exc} (written by a newer mediastore?)"
        ) from exc


def ensure_schema(engine: Engine, *, create_if_empty: bool = True) -> None:
    """Bring an empty database to head; refuse one that is behind or ahead, changing nothing.

    Raises:
        SchemaOutdatedError: the catalog is at another revision, or is not a mediastore catalog.
    """
    current = current_revisions(engine)
    heads = {SCHEMA_HEAD}
    if current == heads:
        return
    where = _where(engine)
    if not current:
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        if tables:
            raise SchemaOutdatedError(
                f"catalog {where} has tables {sorted(tables)} but no mediastore schema version; "
                "it is not a mediastore catalog"
            )
        if create_if_empty:
            log.info("creating the catalog schema in %s", where)
            upgrade(engine)
            return
    known = _revisions()[1]
    if current - known:
        raise SchemaOutdatedError(
            f"catalog {where} is at revision {', '.join(sorted(current))}, which this version "
            "of mediastore does not know (written by a newer mediastore?)"
        )
    raise SchemaOutdatedError(
        f"catalog {where} is at revision {', '.join(sorted(current)) or 'none'}, "
        f"behind head {', '.join(sorted(heads))}: {SCHEMA_UPGRADE_HINT}"
    )
