"""Recovery when it is needed: rows follow their files back, a lost catalog is rebuilt, a
backup is consistent while writers run. Through the CLI (a subprocess: exit code, output,
files) where the behaviour is a command's, checked with plain sqlite3 and hashlib."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import checker
import pytest
from clirun import run_cli
from sqlalchemy import create_engine, text

import mediastore
from mediastore import MediaStore
from mediastore import testing as t

#: each test runs the command in subprocesses: seconds, not milliseconds
pytestmark = pytest.mark.slow

URL = "https://cdn.example/p/1.jpg"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mediastore --root ROOT ARGS...`` in a subprocess."""
    return run_cli("--root", str(root), *args)


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, str]:
    """A store holding one JPEG recorded for URL; (root, md5)."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        rec = store.add_bytes(t.noisy_jpeg(seed=7), url=URL)
    return root, rec.md5


def _status(root: Path, md5: str) -> str:
    return str(checker.media_rows(checker.catalog_path(root))[md5]["status"])


@pytest.mark.parametrize("finder", ["verify", "gc"])
def test_a_missing_row_whose_file_comes_back_is_ok_again(
    photo: tuple[Path, str], tmp_path: Path, finder: str
) -> None:
    """verify marks the row of a vanished file missing and `get` fails (exit 5); once the same
    bytes are back, `verify` (or `gc`) says so, the row is ok again, `get` and `stats` agree."""
    root, md5 = photo
    path = Path(checker.address(root, checker.media_rows(checker.catalog_path(root))[md5]))
    aside = tmp_path / "aside.jpg"
    shutil.move(path, aside)
    gone = cli(root, "verify")
    assert gone.returncode == 1, gone.stderr  # some files failed
    assert f"missing  {md5}" in gone.stdout
    assert gone.stderr == ""  # reported once, in the report (no log line repeating it)
    assert _status(root, md5) == "missing"
    assert cli(root, "get", URL).returncode == 5

    shutil.move(aside, path)
    back = cli(root, finder)
    assert back.returncode == 0, back.stderr
    expected = f"restored {md5}" if finder == "verify" else f"restored: {md5}"
    assert expected in back.stdout
    assert _status(root, md5) == "ok"
    assert cli(root, "get", URL).returncode == 0
    by_status = json.loads(cli(root, "stats", "--json").stdout)["by_status"]
    assert (by_status["ok"]["count"], by_status["missing"]["count"]) == (1, 0)
    assert checker.file_problem(path, checker.media_rows(checker.catalog_path(root))[md5]) is None
    again = cli(root, "verify")
    assert again.returncode == 0 and "restored" not in again.stdout


def test_a_corrupt_row_whose_file_is_in_quarantine_is_reported_corrupt(
    photo: tuple[Path, str],
) -> None:
    """A damaged file is quarantined and its row marked corrupt; the next verify reports it
    corrupt again (what the row says), not missing, in text and in JSON."""
    root, md5 = photo
    path = Path(checker.address(root, checker.media_rows(checker.catalog_path(root))[md5]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    first = cli(root, "verify")
    assert first.returncode == 1 and f"corrupt  {md5}" in first.stdout
    assert _status(root, md5) == "corrupt" and checker.quarantined(root)
    second = cli(root, "verify", "--json")
    assert second.returncode == 1
    report = json.loads(second.stdout)
    assert (report["corrupt"], report["missing"], report["ok"]) == ([md5], [], [])
    assert _status(root, md5) == "corrupt"


def _row_status(store: MediaStore, md5: str) -> str:
    """The row's status read with plain SQL on the store's catalog (SQLite or PostgreSQL)."""
    engine = create_engine(store.config.catalog_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT status FROM media WHERE md5 = :md5")
            return str(conn.execute(query, {"md5": md5}).scalar_one())
    finally:
        engine.dispose()


def _take_away(
    store: MediaStore, blob_url: str | None, request: pytest.FixtureRequest, md5: str
) -> Callable[[], None]:
    """Remove the JPEG of ``md5`` behind the store's back (a file moved aside, or an object
    deleted with boto3); the function that puts the same bytes back."""
    if blob_url is None:
        path = store.root / "media" / "images" / f"{md5}.jpg"
        aside = path.with_name("aside")
        path.rename(aside)
        return lambda: aside.rename(path)
    bucket = request.getfixturevalue("s3_env")
    key = f"store/media/images/{md5}.jpg"
    obj = bucket.client.get_object(Bucket=bucket.name, Key=key)
    body, metadata = obj["Body"].read(), obj["Metadata"]
    bucket.client.delete_object(Bucket=bucket.name, Key=key)
    return lambda: bucket.client.put_object(
        Bucket=bucket.name, Key=key, Body=body, Metadata=metadata, ContentType="image/jpeg"
    )


@pytest.mark.slow
def test_rows_follow_their_files_back_on_every_backend(
    backend_store: MediaStore, blob_url: str | None, request: pytest.FixtureRequest
) -> None:
    """On SQLite and PostgreSQL, disk and S3: verify marks a vanished file's row missing;
    when the same bytes are back, verify restores the row to ok (SQL agrees) and gc finds
    nothing more to do."""
    store = backend_store
    rec = store.add_bytes(t.noisy_jpeg(seed=11), url=URL)
    put_back = _take_away(store, blob_url, request, rec.md5)
    assert store.verify().missing == [rec.md5]
    assert _row_status(store, rec.md5) == "missing"
    assert store.get_by_url(URL) is None

    put_back()
    report = store.verify()
    assert (report.ok, report.restored, report.missing) == ([rec.md5], [rec.md5], [])
    assert _row_status(store, rec.md5) == "ok"
    assert store.get_by_url(URL) == rec._replace(
        last_verified_at=store.get_by_url(URL).last_verified_at
    )
    assert store.gc().restored == [] and store.stats().by_status["ok"].count == 1


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    return checker.tree_snapshot(root)


def test_reindex_rebuilds_a_lost_catalog_and_a_typo_root_is_still_an_error(
    photo: tuple[Path, str], tmp_path: Path
) -> None:
    """With catalog.sqlite3 (and its -wal/-shm) deleted, `reindex` makes a catalog at head and
    records every file again (its URL is gone: only a backup keeps URLs); a root that holds
    no store is still exit 5 with nothing created."""
    root, md5 = photo
    for path in root.glob("catalog.sqlite3*"):
        path.unlink()
    assert cli(root, "stats").returncode == 5
    rebuilt = cli(root, "reindex")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 1 file(s): 1 new row(s)" in rebuilt.stdout
    rows = checker.media_rows(checker.catalog_path(root))
    assert set(rows) == {md5} and rows[md5]["status"] == "ok"
    assert checker.url_map(checker.catalog_path(root)) == {}
    assert cli(root, "get", URL).returncode == 5

    typo = tmp_path / "typo"
    missing = cli(typo, "reindex")
    assert missing.returncode == 5 and missing.stderr.startswith("error: ")
    assert not typo.exists()


def test_a_restored_backup_and_reindex_bring_back_everything(
    photo: tuple[Path, str], tmp_path: Path
) -> None:
    """backup, then more adds, then the catalog lost: the backup copied into place plus
    `reindex` hold every file (those added after the backup without their URLs) and every
    URL the backup knew; verify finds all intact."""
    root, md5 = photo
    copies = tmp_path / "copies"
    copies.mkdir()
    made = cli(root, "backup", str(copies), "--json")
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    assert (report["files"], report["urls"]) == (1, 1)
    later = tmp_path / "later.png"
    later.write_bytes(t.image_bytes("PNG", color="teal"))
    assert cli(root, "add", str(later), "--url", "https://cdn.example/later.png").returncode == 0

    for path in root.glob("catalog.sqlite3*"):
        path.unlink()
    shutil.copy(report["path"], checker.catalog_path(root))
    assert cli(root, "get", URL).returncode == 0
    rebuilt = cli(root, "reindex")
    assert rebuilt.returncode == 0 and "1 new row(s)" in rebuilt.stdout
    rows = checker.media_rows(checker.catalog_path(root))
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"ok"}
    assert checker.url_map(checker.catalog_path(root)) == {URL: md5}
    assert cli(root, "verify").returncode == 0


@pytest.mark.parametrize(
    "dest", ["exists.sqlite3", "no-such-dir/copy.sqlite3"], ids=["existing file", "no parent"]
)
def test_backup_to_a_bad_destination_is_one_error_and_changes_nothing(
    photo: tuple[Path, str], tmp_path: Path, dest: str
) -> None:
    """An existing file or a missing directory: exit 2, one `error:` line, no file written."""
    root, _ = photo
    (tmp_path / "exists.sqlite3").write_bytes(b"keep me")
    before = _tree(tmp_path)
    result = cli(root, "backup", str(tmp_path / dest))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert _tree(tmp_path) == before


@pytest.mark.slow
def test_backup_of_a_postgresql_catalog_names_pg_dump(pg_url: str, tmp_path: Path) -> None:
    """A PostgreSQL catalog is not copied by backup: InvalidInputError naming pg_dump."""
    with (
        MediaStore(tmp_path / "s", db_url=pg_url) as store,
        pytest.raises(mediastore.InvalidInputError, match="pg_dump"),
    ):
        store.backup(tmp_path / "copy.sqlite3")
    assert not (tmp_path / "copy.sqlite3").exists()


WRITER = """
import sys, time
from mediastore import MediaStore, testing as t
with MediaStore(sys.argv[1]) as store:
    i = 0
    while True:
        store.add_bytes(t.noisy_jpeg((32, 24), seed=1000 + i), url=f"https://w.example/{i}")
        i += 1
        print(i, flush=True)
"""


@pytest.mark.slow
def test_backups_taken_while_a_writer_runs_are_consistent(
    photo: tuple[Path, str], tmp_path: Path
) -> None:
    """Five backups while another process adds files: each copy passes SQLite's integrity
    check with plain sqlite3, its every non-removed row has its URL, and each copy holds at
    least as many files as the one before."""
    root, _ = photo
    command = [sys.executable, "-c", WRITER, str(root)]
    counts = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None and writer.stdout.readline()  # it is writing
            for n in range(5):
                with MediaStore(root) as store:
                    report = store.backup(tmp_path / f"copy-{n}.sqlite3")
                assert _copy_counts(Path(report.path)) == (report.files, report.urls)
                counts.append(report.files)
                time.sleep(0.2)
        finally:
            writer.kill()
    assert counts == sorted(counts) and counts[-1] > counts[0]


def _copy_counts(path: Path) -> tuple[int, int]:
    """(files, URLs) of a catalog copy, read with plain sqlite3 after checking that it is
    intact, self-contained (no WAL) and that every row has its URL."""
    with closing(sqlite3.connect(path)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        orphans = copy.execute(
            "SELECT count(*) FROM media m WHERE NOT EXISTS "
            "(SELECT 1 FROM media_urls u WHERE u.md5 = m.md5)"
        ).fetchone()
        assert orphans == (0,)
        files, urls = copy.execute(
            "SELECT count(*), (SELECT count(*) FROM media_urls) FROM media"
        ).fetchone()
    return int(files), int(urls)
