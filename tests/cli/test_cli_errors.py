"""Public API failures are MediaStoreErrors, and the CLI shows each as one line with its exit
code: bad options, bad arguments, a catalog file of garbage bytes and a catalog at a revision
this mediastore does not know."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import checker
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine

import mediastore
from mediastore import MediaStore, StoreConfig, errors
from mediastore import testing as t
from mediastore.catalog.schema import current_revisions, upgrade
from mediastore.cli import main


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


# --- the same through the CLI: one "error:" line, the error's exit code, nothing created -----
def _cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    clean: dict[str, str | None] = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None}
    return CliRunner(env={**clean, **(env or {})}).invoke(main, list(args))


def _one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", [["stats"], ["add", "x.jpg"], ["db", "current"], ["ls"]])
def test_db_garbage_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    root = tmp_path / "root"
    result = _cli("--root", str(root), "--db", "garbage", *command)
    assert result.exit_code == 2, result.output
    assert "not a database URL" in _one_error_line(result)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_catalog_is_refused_in_one_line(tmp_path: Path, url: str) -> None:
    """An in-memory catalog would lose everything when the store closes: exit 2, one line
    asking for a file, nothing created."""
    root = tmp_path / "root"
    MediaStore(root).close()
    before = sorted(os.listdir(root))
    for command in (["stats"], ["db", "current"]):
        result = _cli("--root", str(root), "--db", url, *command)
        assert result.exit_code == 2, result.output
        assert "in-memory SQLite" in _one_error_line(result)
    assert sorted(os.listdir(root)) == before


def test_fetch_from_a_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _cli("--root", str(tmp_path / "s"), "fetch", "--from-file", str(tmp_path / "no.txt"))
    assert result.exit_code == 2
    assert "cannot read --from-file" in _one_error_line(result)


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["stats"]])
def test_garbage_catalog_through_the_cli(tmp_path: Path, command: list[str]) -> None:
    """db current, db upgrade and a store command on a catalog file of garbage bytes: one
    line naming the catalog, exit 7, the file unchanged."""
    path = _garbage_catalog(tmp_path)
    before = path.read_bytes()
    MediaStore(tmp_path / "s").close()
    result = _cli("--root", str(tmp_path / "s"), "--db", f"sqlite:///{path}", *command)
    assert result.exit_code == 7, result.output
    assert "not a database" in _one_error_line(result)
    assert path.read_bytes() == before


def test_unknown_revision_through_the_cli(tmp_path: Path) -> None:
    """db upgrade of a catalog a newer mediastore wrote: exit 7, one line; db current says
    the revision is unknown rather than asking for an upgrade."""
    root = tmp_path / "s"
    MediaStore(root).close()
    with sqlite3.connect(root / "catalog.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    conn.close()
    up = _cli("--root", str(root), "db", "upgrade")
    assert up.exit_code == 7 and "ffff" in _one_error_line(up)
    current = _cli("--root", str(root), "db", "current")
    assert current.exit_code == 7 and "unknown to this mediastore" in current.stdout


@pytest.mark.parametrize(
    "args", [["bogus"], ["add"], ["ls", "--type"], ["verify", "--limit", "x"], ["--nope"]]
)
def test_usage_errors_are_one_error_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = _cli("--root", str(tmp_path), *args)
    assert result.exit_code == 2
    assert "--help" in _one_error_line(result)


def test_verify_one_md5_exits_with_its_own_code(tmp_path: Path) -> None:
    """verify MD5: 4 when that file is corrupt, 5 when it is missing; no MD5 given and
    something wrong: 1."""
    root = tmp_path / "s"
    with MediaStore(root) as store:
        bad = store.add_bytes(t.image_bytes("PNG", color="green"))
        gone = store.add_bytes(t.image_bytes("GIF", color="green"))
    assert bad.path is not None and gone.path is not None
    bad.path.write_bytes(b"\x89PNG damaged")
    gone.path.unlink()
    assert _cli("--root", str(root), "verify", bad.md5).exit_code == 4
    assert _cli("--root", str(root), "verify", gone.md5[:8]).exit_code == 5
    assert _cli("--root", str(root), "verify", bad.md5, gone.md5).exit_code == 1
    assert _cli("--root", str(root), "verify").exit_code == 1


def test_count_to_verify_is_the_progress_total(tmp_path: Path) -> None:
    """verify's bar knows its total before the first file: count_to_verify matches what
    verify then checks, for all, a period and a limit."""
    with MediaStore(tmp_path / "s") as store:
        md5s = [store.add_bytes(t.pdf_bytes(f"d{i}")).md5 for i in range(5)]
        assert store.count_to_verify() == 5 == store.verify().checked
        assert store.count_to_verify(older_than=timedelta(days=1)) == 0
        assert store.count_to_verify(limit=2) == 2
        store.remove(md5s[0])
        assert store.count_to_verify() == 4
        assert store.count_to_verify(md5s[1:3]) == 2
        seen: list[tuple[int, int]] = []
        store.verify(progress=lambda done, total: seen.append((done, total)))
        assert {total for _, total in seen} == {4}


def test_shell_completion_script() -> None:
    """The documented `_MEDIASTORE_COMPLETE=bash_source mediastore` prints a bash script."""
    result = CliRunner(env={"_MEDIASTORE_COMPLETE": "bash_source"}).invoke(
        main, [], prog_name="mediastore"
    )
    assert result.exit_code == 0
    assert "_mediastore_completion" in result.stdout and "complete " in result.stdout
