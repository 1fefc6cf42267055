"""The catalog schema: Alembic owns it, models agree with it, outdated catalogs are refused."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import event, inspect, text

from mediastore import CatalogError, MediaStore, SchemaOutdatedError
from mediastore import testing as t
from mediastore.catalog import schema
from mediastore.catalog.engine import make_engine
from mediastore.catalog.models import metadata
from mediastore.cli import main as cli_main


def _dump(db: Path) -> list[str]:
    """The database's schema and rows as SQL text (independent of WAL checkpoints)."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def test_new_catalog_is_at_head_and_matches_models(tmp_path: Path) -> None:
    """Opening an empty database runs the migrations; autogenerate then finds no difference."""
    with MediaStore(tmp_path) as store:
        engine = store.catalog.engine
        assert schema.current_revisions(engine) == schema.head_revisions()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_schema_head_constant_is_alembics_head() -> None:
    """The revision a store checks for on opening is the head of the shipped migrations."""
    assert schema.head_revisions() == {schema.SCHEMA_HEAD}


def test_opening_a_store_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic (about 0.3 s to import) is loaded to migrate, not to open a current catalog."""
    MediaStore(tmp_path).close()
    code = (
        "import sys\nfrom mediastore import MediaStore\n"
        f"MediaStore({str(tmp_path)!r}).close()\nprint('alembic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """The default catalog uses WAL, a busy timeout and foreign keys."""
    with MediaStore(tmp_path) as store, store.catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_every_query_uses_an_index(tmp_path: Path) -> None:
    """Every SELECT the store runs for lookups, stats and verify schedules uses an index, no sort.

    The statements are captured as the store runs them (through the generic SQLAlchemy path,
    which the SQLite point reads compile from), then explained with their own parameters.
    """
    with MediaStore(tmp_path) as store:
        rec = store.add_bytes(t.image_bytes(), url="https://x.test/a")
        store.catalog._points = None  # route point reads through the engine to see them
        seen: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("SELECT"):
                seen.append((statement, parameters))

        event.listen(store.catalog.engine, "before_cursor_execute", capture)
        assert store.get_by_url("https://x.test/a") is not None
        assert store.get_by_md5(rec.md5) is not None
        assert store.urls_for(rec.md5) == ["https://x.test/a"]
        store.stats()
        store.verify(older_than=timedelta(days=7), limit=100)
        event.remove(store.catalog.engine, "before_cursor_execute", capture)
        assert len(seen) >= 7
        with store.catalog.engine.connect() as conn:
            for sql, params in seen:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)  # type: ignore[arg-type]
                steps = [str(r[-1]) for r in plan]
                table_steps = [s for s in steps if s.startswith(("SCAN", "SEARCH"))]
                # reading back a subquery the plan materialised (from an index) is no table scan
                derived = {s.split()[1] for s in steps if s.startswith("MATERIALIZE")}
                table_steps = [s for s in table_steps if s.split()[1] not in derived]
                for step in table_steps:
                    assert "INDEX" in step or "PRIMARY KEY" in step, (sql, step)
                assert not any("TEMP B-TREE" in s for s in steps), (sql, steps)  # no sorts


def test_outdated_catalog_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog behind head is refused with the command to run, and not altered."""
    MediaStore(tmp_path).close()
    before = _dump(tmp_path / "catalog.sqlite3")
    monkeypatch.setattr(schema, "SCHEMA_HEAD", "0999")
    with pytest.raises(SchemaOutdatedError, match="mediastore db upgrade"):
        MediaStore(tmp_path)
    assert _dump(tmp_path / "catalog.sqlite3") == before


def test_catalog_from_a_newer_mediastore_is_refused(tmp_path: Path) -> None:
    """An unknown revision (a newer mediastore wrote it) is refused."""
    MediaStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(SchemaOutdatedError, match="does not know"):
        MediaStore(tmp_path)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A database with other tables and no mediastore version is refused, not migrated."""
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(SchemaOutdatedError, match="not a mediastore catalog"):
        MediaStore(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", busy_timeout=1)
    assert inspect(engine).get_table_names() == ["other"]
    engine.dispose()


def test_catalog_that_is_not_a_database(tmp_path: Path) -> None:
    """A catalog file holding garbage is a CatalogError naming the file; it is not touched."""
    db = tmp_path / "catalog.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError, match=str(db)):
        MediaStore(tmp_path)
    assert db.read_bytes() == b"this is not a database" * 100


def test_locked_catalog_times_out_with_a_clear_error(tmp_path: Path) -> None:
    """A writer holding the lock past busy_timeout gives a CatalogError, nothing written."""
    MediaStore(tmp_path).close()
    blocker = sqlite3.connect(tmp_path / "catalog.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with MediaStore(tmp_path, busy_timeout=0.2) as store:
            with pytest.raises(CatalogError, match="locked"):
                store.add_bytes(t.image_bytes(), url="https://x.test/l")
            assert t.files_under(tmp_path / "media") == []
            assert t.files_under(tmp_path / "tmp") == []
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(schema.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_downgrade_and_upgrade_round_trip(tmp_path: Path) -> None:
    """Each revision upgrades and downgrades one step at a time, with data in the catalog."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    cfg = schema.alembic_config(url)
    revisions = _revisions()
    assert revisions[:2] == ["0001", "0002"]
    with MediaStore(tmp_path) as store:
        rec = store.add_bytes(t.image_bytes(), url="https://x.test/keep")
    for rev in reversed(revisions[:-1]):
        command.downgrade(cfg, rev)
    command.downgrade(cfg, "base")
    engine = make_engine(url, busy_timeout=1)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    for rev in revisions:
        command.upgrade(cfg, rev)
    with MediaStore(tmp_path) as store:
        assert store.add_bytes(t.image_bytes()).md5 == rec.md5
        with store.catalog.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []


def _catalog_at_0001_with_data(tmp_path: Path) -> str:
    """A catalog migrated to 0001 only, holding two media and three URLs (written by SQL)."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    command.upgrade(schema.alembic_config(url), "0001")
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as conn:
        for md5, size in (("a" * 32, 10), ("b" * 32, 20)):
            conn.execute(
                "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size, "
                "created_at, status) VALUES (?, ?, 'image', 'image/png', 'png', ?, "
                "'2026-01-01 00:00:00', 'ok')",
                (md5, "0" * 64, size),
            )
        for url_text, md5 in (
            ("https://x.test/1", "a"),
            ("https://x.test/2", "a"),
            ("https://x.test/3", "b"),
        ):
            conn.execute(
                "INSERT INTO media_urls (url, md5, first_seen_at, etag) "
                "VALUES (?, ?, '2026-01-02 00:00:00', 'W/\"e\"')",
                (url_text, md5 * 32),
            )
    return url


def test_upgrade_0001_to_0002_keeps_data(tmp_path: Path) -> None:
    """Upgrading a 0001 catalog that holds data keeps every row and backfills url_md5."""
    from alembic import command

    url = _catalog_at_0001_with_data(tmp_path)
    command.upgrade(schema.alembic_config(url), "0002")
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as conn:
        assert conn.execute("SELECT count(*), sum(size) FROM media").fetchone() == (2, 30)
        rows = conn.execute(
            "SELECT url, url_md5, source, md5, etag FROM media_urls ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == ["https://x.test/1", "https://x.test/2", "https://x.test/3"]
    assert all(r[1] == hashlib.md5(r[0].encode()).hexdigest() for r in rows)
    assert {r[2] for r in rows} == {"url"} and rows[2][3] == "b" * 32
    assert rows[0][4] == 'W/"e"'


def test_upgrade_0002_to_0003_keeps_data_and_allows_removal(tmp_path: Path) -> None:
    """0003 keeps every row and URL, adds the removed state and the writers/intents tables;
    downgrading forgets removed content (0002 cannot hold it) and keeps the rest."""
    from alembic import command

    url = _catalog_at_0001_with_data(tmp_path)
    cfg = schema.alembic_config(url)
    command.upgrade(cfg, "0002")
    before = _dump(tmp_path / "catalog.sqlite3")
    command.upgrade(cfg, "0003")
    db = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), sum(size) FROM media").fetchone() == (2, 30)
        unset = conn.execute("SELECT count(*) FROM media WHERE removed_at IS NULL").fetchone()
        assert unset == (2,)
        assert conn.execute("SELECT url FROM media_urls ORDER BY id").fetchall() == [
            ("https://x.test/1",),
            ("https://x.test/2",),
            ("https://x.test/3",),
        ]
        assert conn.execute("SELECT count(*) FROM writers").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM intents").fetchone() == (0,)
        conn.execute("UPDATE media SET status = 'removed' WHERE md5 = ?", ("b" * 32,))
        conn.execute("DELETE FROM media_urls WHERE md5 = ?", ("b" * 32,))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE media SET status = 'gone' WHERE md5 = ?", ("a" * 32,))
    command.downgrade(cfg, "0002")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT md5 FROM media").fetchall() == [("a" * 32,)]
        assert conn.execute("SELECT count(*) FROM media_urls").fetchone() == (2,)
    command.upgrade(cfg, "0003")
    assert _dump(db) != before  # (b was forgotten by the downgrade, as documented)


def test_store_refuses_0001_until_upgraded(tmp_path: Path) -> None:
    """A catalog at 0001 is refused, unchanged, naming the command; it works after upgrade."""
    _catalog_at_0001_with_data(tmp_path)
    before = _dump(tmp_path / "catalog.sqlite3")
    with pytest.raises(SchemaOutdatedError, match="mediastore db upgrade") as info:
        MediaStore(tmp_path)
    assert "0001" in str(info.value)
    assert _dump(tmp_path / "catalog.sqlite3") == before
    result = CliRunner().invoke(cli_main, ["--root", str(tmp_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    with MediaStore(tmp_path) as store:
        assert store.urls_for("a" * 32) == ["https://x.test/1", "https://x.test/2"]


@pytest.mark.slow
def test_alembic_command_line_from_repo_root(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    """`alembic upgrade head` from the repo root migrates MEDIASTORE_DB_URL's catalog."""
    repo = pytestconfig.rootpath  # where pyproject.toml is
    url = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    env = {**os.environ, "MEDIASTORE_DB_URL": url}
    alembic = [sys.executable, "-m", "alembic"]
    subprocess.run(
        [*alembic, "upgrade", "head"], cwd=repo, env=env, check=True, capture_output=True
    )
    check = subprocess.run([*alembic, "check"], cwd=repo, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with MediaStore(tmp_path, db_url=url) as store:
        assert store.stats().total_files == 0
    engine = make_engine(url, busy_timeout=1)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert {version} == schema.head_revisions()
    engine.dispose()
