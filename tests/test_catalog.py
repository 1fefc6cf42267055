"""The catalog schema: Alembic owns it, models agree with it, outdated catalogs are refused."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from mediastore import CatalogError, MediaStore, SchemaOutdatedError
from mediastore import testing as t
from mediastore.catalog import schema
from mediastore.catalog.engine import make_engine
from mediastore.catalog.models import Base

REPO = Path(__file__).resolve().parents[1]


def test_new_catalog_is_at_head_and_matches_models(tmp_path: Path) -> None:
    """Opening an empty database runs the migrations; autogenerate then finds no difference."""
    with MediaStore(tmp_path) as store:
        engine = store._catalog.engine
        assert schema.current_revisions(engine) == schema.head_revisions()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """The default catalog uses WAL, a busy timeout and foreign keys."""
    with MediaStore(tmp_path) as store, store._catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_every_query_uses_an_index(tmp_path: Path) -> None:
    """Lookups by url, md5, urls_for, stats by type and verification age use indexes."""
    with MediaStore(tmp_path) as store:
        store.add_bytes(t.image_bytes(), url="https://x.test/a")
        queries = {
            "by url": "SELECT m.md5 FROM media_urls u JOIN media m ON m.md5 = u.md5 "
            "WHERE u.url = 'https://x.test/a'",
            "by md5": "SELECT * FROM media WHERE md5 = 'x'",
            "urls for": "SELECT url FROM media_urls WHERE md5 = 'x'",
            "stats": "SELECT media_type, count(*), sum(size) FROM media GROUP BY media_type",
            "not verified since": "SELECT md5 FROM media WHERE last_verified_at < '2026-01-01' "
            "ORDER BY last_verified_at",
        }
        with store._catalog.engine.connect() as conn:
            for name, sql in queries.items():
                steps = [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
                table_steps = [s for s in steps if s.startswith(("SCAN", "SEARCH"))]
                assert table_steps, (name, steps)
                for step in table_steps:
                    assert "INDEX" in step or "PRIMARY KEY" in step, (name, step)


def test_outdated_catalog_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog behind head is refused with the command to run, and not altered."""
    MediaStore(tmp_path).close()
    db = tmp_path / "catalog.sqlite3"
    before = db.read_bytes()
    monkeypatch.setattr(schema, "head_revisions", lambda: {"0999"})
    with pytest.raises(SchemaOutdatedError, match="mediastore db upgrade"):
        MediaStore(tmp_path)
    assert db.read_bytes() == before


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


def test_downgrade_and_upgrade_round_trip(tmp_path: Path) -> None:
    """Every revision downgrades to base and upgrades back to head."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    cfg = schema.alembic_config(url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    engine = make_engine(url, busy_timeout=1)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    command.upgrade(cfg, "head")
    with MediaStore(tmp_path, db_url=url) as store:
        assert store.add_bytes(t.image_bytes()).size > 0


def test_alembic_command_line_from_repo_root(tmp_path: Path) -> None:
    """`alembic upgrade head` from the repo root migrates MEDIASTORE_DB_URL's catalog."""
    url = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    env = {**os.environ, "MEDIASTORE_DB_URL": url}
    alembic = [sys.executable, "-m", "alembic"]
    subprocess.run(
        [*alembic, "upgrade", "head"], cwd=REPO, env=env, check=True, capture_output=True
    )
    check = subprocess.run([*alembic, "check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with MediaStore(tmp_path, db_url=url) as store:
        assert store.stats().total_files == 0
    engine = make_engine(url, busy_timeout=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()
