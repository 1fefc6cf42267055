"""Public API failures are MediaStoreErrors (issue 13): bad options, bad arguments, a catalog
file of garbage bytes and a catalog at a revision this mediastore does not know."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import checker
import pytest
from sqlalchemy import create_engine

import mediastore
from mediastore import MediaStore, StoreConfig, errors
from mediastore.catalog.schema import current_revisions, upgrade


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_size": 0}, {"max_file_size": -1}, {"max_image_pixels": 0},
        {"retries": True}, {"retries": -1}, {"busy_timeout": float("nan")},
        {"per_host": 0}, {"host_rate": 0}, {"per_host_start": 20},
        {"speed_time": 0}, {"chunk_size": "big"}, {"db_url": ""},
    ],
    ids=repr,
)  # fmt: skip
def test_bad_options_raise_invalid_input_and_create_nothing(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    """MediaStore(chunk_size=0) and the like raise InvalidInputError (a MediaStoreError and a
    ValueError, exit code 2) naming the option, before anything is created."""
    with pytest.raises(errors.InvalidInputError) as caught:
        MediaStore(tmp_path / "s", **options)
    assert isinstance(caught.value, ValueError) and caught.value.exit_code == 2
    assert next(iter(options)) in str(caught.value)
    assert not (tmp_path / "s").exists()
    with pytest.raises(errors.InvalidInputError):
        StoreConfig(**options)


def test_valid_edge_options_are_accepted() -> None:
    """Zero where zero means something (no retries, no speed check, no wait) is accepted."""
    cfg = StoreConfig(retries=0, speed_limit=0, busy_timeout=0, max_redirects=0, backoff_factor=0)
    assert cfg.retries == 0 and cfg.speed_limit == 0


@pytest.mark.parametrize("bad", [5, None, b"/etc/passwd", ["a.jpg"]], ids=repr)
def test_add_file_of_a_non_path_is_invalid_input(store: MediaStore, bad: Any) -> None:
    """add_file(5) raises InvalidInputError, not TypeError, and stores nothing."""
    with pytest.raises(errors.InvalidInputError, match="needs a path"):
        store.add_file(bad)
    assert store.stats().total_files == 0


def test_reports_are_exported() -> None:
    """The reports public methods return are importable from the package and in __all__."""
    for name in ("GcReport", "ReindexReport", "LegacyImportReport", "VerifyReport"):
        assert name in mediastore.__all__
        assert getattr(mediastore, name).__module__ == "mediastore.records"


def _garbage_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database, only text " * 200)
    return path


def test_garbage_catalog_is_one_catalog_error(tmp_path: Path) -> None:
    """A catalog file of garbage bytes: opening, reading the revision and upgrading each raise
    a one-line CatalogError naming the catalog; the file is left as it was."""
    path = _garbage_catalog(tmp_path)
    before = path.read_bytes()
    engine = create_engine(f"sqlite:///{path}")
    try:
        for call in (current_revisions, upgrade):
            with pytest.raises(errors.CatalogError) as caught:
                call(engine)
            assert "not a database" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        engine.dispose()
    with pytest.raises(errors.CatalogError):
        MediaStore(tmp_path / "s", db_url=f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_upgrade_of_an_unknown_revision_is_schema_error(tmp_path: Path) -> None:
    """A catalog at a revision these migrations do not know (a newer mediastore's): upgrade
    raises SchemaOutdatedError (a CatalogError) and changes nothing."""
    MediaStore(tmp_path / "s").close()
    db = tmp_path / "s" / "catalog.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    conn.close()
    before = checker.tree_snapshot(tmp_path / "s")
    engine = create_engine(f"sqlite:///{db}")
    try:
        with pytest.raises(errors.SchemaOutdatedError, match="ffff"):
            upgrade(engine)
        assert current_revisions(engine) == {"ffff"}
    finally:
        engine.dispose()
    assert checker.tree_snapshot(tmp_path / "s") == before
